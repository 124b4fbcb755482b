"""Re-hash every shipped file under mi_course/checkpoints/ into MANIFEST.json (run after training)."""

from mi_course.models.checkpoints import write_manifest

if __name__ == "__main__":
    for path, entry in write_manifest().items():
        print(f"{entry['sha256'][:12]}  {entry['bytes']:>10,}  {path}")
