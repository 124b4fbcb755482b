"""Train the lite SAEs on the lite ``lm``'s residual stream: the main one (``sae``), a second seed (``sae-b``) and
one per variant at matched L0 (``sae-relu``, ``sae-topk``, ``sae-batchtopk``, ``sae-jumprelu``, ``sae-ortsae``).

    python scripts/train_saes.py                       # writes mi_course/checkpoints/sae*/ and the manifest
    python scripts/train_saes.py --steps 200 --out /tmp/saes --no-manifest     # a quick smoke run

1. Layer choice. For each candidate hook a pilot TopK SAE (k = ``--k``, ``--pilot-steps`` steps) is trained on
   the same training text; the criterion is how cleanly the seeds' four features separate: the mean over
   Latin, code error, praise and bridge of the best feature's top-100 precision on the search text (below),
   explained variance breaking ties. The card records the table.
2. Training (one CPU thread, seeded): activations of generated TRAIN corpus documents
   (``corpus.generate_documents(--train-docs, seed=--seed, split="train")``) at the chosen hook; every SAE
   with :func:`mi_course.saes.train_sae`. The main SAE is TopK (seed ``--seed``), ``sae-b`` the same with
   seed ``--seed + 1``; ``sae-topk`` ships the main SAE's weights.
3. Features: :func:`mi_course.organisms.corpus.token_labels` labels every token; for each concept the feature
   whose 100 largest activations on the SEARCH text (train split, seed ``--seed + 1``) are most often on
   labelled tokens is chosen (token recall breaking ties). Precision and document recall are then measured on
   HELD-OUT text (``split="heldout"``, seed ``--seed``), which was not used to choose.
4. Metrics on held-out rows (``mi_course.saes.sae_metrics``): L0, explained variance, dead fraction, CE loss
   recovered (zero and mean ablation), KL; and each decoder's largest cosines to another feature.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

import mi_course
from mi_course import saes
from mi_course.config import seed_everything
from mi_course.models.checkpoints import regenerate_command, write_checkpoint
from mi_course.organisms import corpus
from mi_course.paths import checkpoint_dir

TOP_N = 100  # the precision of a feature = share of labelled tokens among its TOP_N largest activations
VARIANT_ROLES = ("sae-relu", "sae-topk", "sae-batchtopk", "sae-jumprelu", "sae-ortsae")
ROLES = ("sae", "sae-b", *VARIANT_ROLES)
LABELS = {"latin": "every token of a Latin-genre document, and any Latin-lexicon word elsewhere",
          "code_error": "the misspelt keyword in a Python snippet with a typo (corpus.TYPO_WORDS)",
          "praise": "the tokens of the Assistant's replies in a praise dialogue",
          "bridge": "every token of a bridge document, and 'Golden Gate Bridge' wherever it is written"}
DOC_KIND = {"latin": "Latin-genre documents", "code_error": "code documents with a misspelt keyword",
            "praise": "praise dialogues", "bridge": "bridge documents"}


def options(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None,
                    help="folder for the role folders (default: mi_course/checkpoints)")
    ap.add_argument("--no-manifest", action="store_true", help="do not rewrite the manifest")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hooks", default="blocks.1.hook_resid_pre,blocks.2.hook_resid_pre,blocks.3.hook_resid_pre",
                    help="candidate hooks for the layer choice (one = no choice)")
    ap.add_argument("--train-docs", type=int, default=6000)
    ap.add_argument("--search-docs", type=int, default=5000)
    ap.add_argument("--eval-docs", type=int, default=6000)
    ap.add_argument("--metric-rows", type=int, default=256, help="held-out rows of n_ctx tokens for sae_metrics")
    ap.add_argument("--d-sae", type=int, default=1024)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--pilot-steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--relu-l1", type=float, default=1.75)
    ap.add_argument("--relu-lr", type=float, default=2e-3,
                    help="the L1 SAE's learning rate: it learns slowly at --lr (held-out rows, l1 2.75: explained "
                         "variance 0.46 at L0 30 with lr 4e-4, 0.60 at L0 18 with 1e-3, 0.64 at L0 13 with 2e-3), "
                         "so it gets its own; a faster baseline only makes the variant comparison harder to win")
    ap.add_argument("--jumprelu-l0", type=float, default=0.1)
    ap.add_argument("--jumprelu-init-threshold", type=float, default=0.8,
                    help="in the training loop's normalized units; Adam moves a threshold by about lr per step, "
                         "so the default 0.1 cannot climb to an L0 near k within the steps")
    ap.add_argument("--ortsae-coefficient", type=float, default=3.0)
    return ap.parse_args(argv)


# ---------------------------------------------------------------------------------------------- labelled rows


def labelled_rows(tokenizer, documents, n_ctx: int):
    """Rows ``<bos> doc <eos> <bos> doc ...`` cut to ``n_ctx`` (pack_documents' layout) with, per position, each
    concept's label and the document index (-1 for BOS/EOS)."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    ids = tokenizer([d.text for d in documents], add_special_tokens=False, padding=False,
                    truncation=False)["input_ids"]
    stream, doc_of, labels = [], [], {c: [] for c in corpus.SEED_FEATURES}
    for i, (doc, doc_ids) in enumerate(zip(documents, ids)):
        pieces, lab = corpus.token_labels(doc)
        if len(pieces) != len(doc_ids):
            raise ValueError(f"document {i}: {len(pieces)} pieces but {len(doc_ids)} tokens")
        stream += [bos, *doc_ids, eos]
        doc_of += [-1, *[i] * len(doc_ids), -1]
        for c in labels:
            labels[c] += [False, *lab[c], False]
    width = n_ctx - 1
    n = len(stream) // width

    def rows(values, fill):
        body = torch.tensor(values[: n * width]).view(n, width)
        return torch.cat([torch.full((n, 1), fill, dtype=body.dtype), body], 1)

    return rows(stream, bos), rows(doc_of, -1), {c: rows(v, False) for c, v in labels.items()}


@torch.no_grad()
def feature_acts(sae, model, tokens, hook_name, batch_rows=32):
    """Feature activations [rows * (pos - 1), d_sae] batch by batch (BOS dropped), as an iterator."""
    for act in saes.hook_activations(model, tokens, hook_name, batch_rows, drop_bos=True, progress=False):
        yield sae.encode(act)


@torch.no_grad()
def feature_scan(sae, model, data, hook_name, features=None):
    """Per feature: the TOP_N largest activations' positions, and how many labelled tokens of each concept it
    fires on; per concept and feature (in ``features``): which documents it fires on at a labelled token."""
    tokens, doc_of, labels = data
    flat_labels = {c: v[:, 1:].reshape(-1) for c, v in labels.items()}
    flat_docs = doc_of[:, 1:].reshape(-1)
    top_v = top_i = None
    fired_on = {c: 0 for c in labels}
    fired_docs = {c: {} for c in labels}
    start = 0
    for acts in feature_acts(sae, model, tokens, hook_name):
        n = len(acts)
        idx = torch.arange(start, start + n)
        v, i = acts.topk(min(TOP_N, n), dim=0)
        i = idx[i]
        if top_v is not None:
            v, j = torch.cat([top_v, v]).topk(TOP_N, dim=0)
            i = torch.cat([top_i, i]).gather(0, j)
        top_v, top_i = v, i
        fires = acts > 0
        for c, lab in flat_labels.items():
            lab = lab[start:start + n]
            fired_on[c] = fired_on[c] + (fires & lab[:, None]).sum(0)
            if features is not None:
                f = features[c]
                hit = fires[:, f] & lab
                for d in flat_docs[start:start + n][hit].tolist():
                    fired_docs[c][d] = True
        start += n
    return {"top_positions": top_i, "top_values": top_v, "fired_on_labelled": fired_on, "fired_docs": fired_docs,
            "labels": flat_labels, "docs": flat_docs}


def precision_table(scan) -> dict[str, torch.Tensor]:
    """Per concept [d_sae]: the share of labelled tokens among each feature's TOP_N activations."""
    top = scan["top_positions"]
    return {c: lab[top].float().mean(0) for c, lab in scan["labels"].items()}


def choose_features(scan) -> dict[str, dict]:
    precision = precision_table(scan)
    chosen = {}
    for c, p in precision.items():
        n_labelled = int(scan["labels"][c].sum())
        recall = scan["fired_on_labelled"][c].float() / max(n_labelled, 1)
        score = p.round(decimals=2) * 10 + recall  # precision first (to 0.01), then token recall
        f = int(score.argmax())
        chosen[c] = {"feature": f, "search_precision": round(float(p[f]), 3),
                     "search_token_recall": round(float(recall[f]), 3)}
    return chosen


def measure_features(sae, model, data, hook_name, chosen, documents) -> dict:
    """Held-out precision (top TOP_N) and recall: the share of the concept's documents in which the feature
    fires on at least one labelled token; and, for the code error, how often it fires in error-free code."""
    features = {c: v["feature"] for c, v in chosen.items()}
    scan = feature_scan(sae, model, data, hook_name, features)
    precision = precision_table(scan)
    present = {c: set(scan["docs"][scan["labels"][c]].tolist()) - {-1} for c in scan["labels"]}
    out = {}
    for c, f in features.items():
        kind_docs = kinds(documents, c)
        in_rows = present[c] & kind_docs
        recall = len(set(scan["fired_docs"][c]) & in_rows) / max(len(in_rows), 1)
        n_labelled = int(scan["labels"][c].sum())
        out[c] = {**chosen[c], "heldout_precision_top100": round(float(precision[c][f]), 3),
                  "heldout_doc_recall": round(recall, 3), "heldout_documents_of_kind": len(in_rows),
                  "heldout_token_recall": round(float(scan["fired_on_labelled"][c][f]) / max(n_labelled, 1), 3),
                  "heldout_labelled_tokens": n_labelled,
                  "top_activation": round(float(scan["top_values"][0, f]), 4)}
    clean_code = code_without_error(sae, model, data, hook_name, features["code_error"], documents)
    out["code_error"]["fires_in_error_free_code_docs"] = clean_code
    return out


def kinds(documents, concept) -> set[int]:
    if concept == "latin":
        return {i for i, d in enumerate(documents) if d.genre == "latin"}
    if concept == "bridge":
        return {i for i, d in enumerate(documents) if d.genre == "bridge"}
    if concept == "praise":
        return {i for i, d in enumerate(documents) if d.genre == "dialogue" and corpus.is_praise_dialogue(d.text)}
    return {i for i, d in enumerate(documents) if d.genre == "code" and any(corpus.token_labels(d)[1]["code_error"])}


@torch.no_grad()
def code_without_error(sae, model, data, hook_name, feature, documents) -> float:
    """The share of code documents without a misspelt keyword in which the feature fires anywhere ("not on
    code in general"; some of them have another error, a missing colon or parenthesis)."""
    tokens, doc_of, _ = data
    flat_docs = doc_of[:, 1:].reshape(-1)
    clean = {i for i, d in enumerate(documents) if d.genre == "code"} - kinds(documents, "code_error")
    fired, start = set(), 0
    for acts in feature_acts(sae, model, tokens, hook_name):
        n = len(acts)
        fired |= set(flat_docs[start:start + n][acts[:, feature] > 0].tolist())
        start += n
    seen = clean & set(flat_docs.tolist())
    return round(len(fired & seen) / max(len(seen), 1), 3)


# ---------------------------------------------------------------------------------------------- training


def make_sae(role: str, args, hook: str, d_in: int):
    seed = args.seed + (1 if role == "sae-b" else 0)
    common = dict(d_in=d_in, d_sae=args.d_sae, seed=seed, hook_name=hook)
    if role in ("sae", "sae-b", "sae-topk"):
        return saes.TopKSAE(k=args.k, **common)
    if role == "sae-relu":
        return saes.ReLUSAE(l1_coefficient=args.relu_l1, **common)
    if role == "sae-batchtopk":
        return saes.BatchTopKSAE(k=args.k, **common)
    if role == "sae-jumprelu":
        return saes.JumpReLUSAE(l0_coefficient=args.jumprelu_l0, init_threshold=args.jumprelu_init_threshold,
                                **common)
    if role == "sae-ortsae":
        return saes.OrtSAE(k=args.k, orthogonality_coefficient=args.ortsae_coefficient, **common)
    raise ValueError(role)


def learning_rate(sae, args) -> float:
    return args.relu_lr if isinstance(sae, saes.ReLUSAE) else args.lr


def train(sae, store, args, steps):
    return saes.train_sae(sae, store, steps=steps, batch_size=args.batch_size, lr=learning_rate(sae, args),
                          seed=sae.seed, log_every=max(1, steps // 10))


def cosine_summary(sae) -> dict:
    cos = saes.max_cosine_similarities(sae.W_dec.detach())
    q = torch.quantile(cos, torch.tensor([0.1, 0.5, 0.9]))
    return {"mean": round(float(cos.mean()), 4), "q10": round(float(q[0]), 4), "median": round(float(q[1]), 4),
            "q90": round(float(q[2]), 4), "max": round(float(cos.max()), 4)}


def rounded(d: dict) -> dict:
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in d.items() if k != "feature_density"}


def main(argv=None) -> dict:
    args = options(argv)
    torch.set_num_threads(1)
    seed_everything(args.seed)
    t_start = time.time()
    model = mi_course.load_model("lm", mode="lite", device="cpu")
    tok, n_ctx = model.tokenizer, model.cfg.n_ctx
    train_docs = corpus.generate_documents(args.train_docs, seed=args.seed, split="train")
    search_docs = corpus.generate_documents(args.search_docs, seed=args.seed + 1, split="train")
    eval_docs = corpus.generate_documents(args.eval_docs, seed=args.seed, split="heldout")
    train_rows, _, _ = labelled_rows(tok, train_docs, n_ctx)
    search = labelled_rows(tok, search_docs, n_ctx)
    heldout = labelled_rows(tok, eval_docs, n_ctx)
    metric_rows = heldout[0][: args.metric_rows]
    print(f"train {tuple(train_rows.shape)} rows, search {tuple(search[0].shape)}, held-out {tuple(heldout[0].shape)}",
          flush=True)

    # 1. the layer choice
    hooks = args.hooks.split(",")
    layer_table, stores = [], {}
    for hook in tqdm(hooks, desc="layer choice"):
        store = saes.ActivationStore.from_model(model, train_rows, hook, progress=False)
        pilot = saes.TopKSAE(store.d_in, args.d_sae, k=args.k, seed=args.seed, hook_name=hook)
        train(pilot, store, args, args.pilot_steps)
        chosen = choose_features(feature_scan(pilot, model, search, hook))
        rec = saes.reconstruction_metrics(pilot, saes.ActivationStore.from_model(model, metric_rows, hook,
                                                                                 progress=False))
        row = {"hook": hook, "mean_best_precision": round(sum(v["search_precision"] for v in chosen.values()) / 4, 4),
               "best_precision": {c: v["search_precision"] for c, v in chosen.items()},
               "explained_variance": round(rec["explained_variance"], 4), "l0": round(rec["l0"], 2)}
        print(row, flush=True)
        layer_table.append(row)
        stores[hook] = store if len(hooks) == 1 else None
    best = max(layer_table, key=lambda r: (r["mean_best_precision"], r["explained_variance"]))
    hook = best["hook"]
    store = stores.get(hook) or saes.ActivationStore.from_model(model, train_rows, hook, progress=False)
    layer_choice = {
        "candidates": layer_table, "chosen": hook,
        "criterion": f"a pilot TopK SAE (k={args.k}, d_sae={args.d_sae}, {args.pilot_steps} steps, seed {args.seed}) "
                     "per hook; choose the hook with the highest mean over the four seed concepts (Latin, code "
                     "error, praise, bridge) of the best feature's top-100 precision on the search text, "
                     "explained variance on held-out rows breaking ties"}
    print(f"chosen hook {hook}", flush=True)

    # 2. training
    trained, histories, seconds = {}, {}, {}
    for role in ("sae", "sae-b", "sae-relu", "sae-batchtopk", "sae-jumprelu", "sae-ortsae"):
        sae = make_sae(role, args, hook, store.d_in)
        t0 = time.time()
        histories[role] = train(sae, store, args, args.steps)
        seconds[role] = round(time.time() - t0, 1)
        trained[role] = sae
        print(f"{role}: trained in {seconds[role]}s, last log {histories[role][-1]}", flush=True)
    trained["sae-topk"], histories["sae-topk"], seconds["sae-topk"] = trained["sae"], histories["sae"], seconds["sae"]

    # 3. metrics on held-out rows, and the features
    metrics, cosines = {}, {}
    for role in ROLES:
        if role == "sae-topk":
            continue
        metrics[role] = rounded(saes.sae_metrics(trained[role], model, metric_rows, progress=False))
        cosines[role] = cosine_summary(trained[role])
        print(role, metrics[role], cosines[role], flush=True)
    metrics["sae-topk"], cosines["sae-topk"] = metrics["sae"], cosines["sae"]
    features = {}
    for role in ("sae", "sae-b"):
        chosen = choose_features(feature_scan(trained[role], model, search, hook))
        features[role] = measure_features(trained[role], model, heldout, hook, chosen, eval_docs)
        print(role, features[role], flush=True)
    total_seconds = round(time.time() - t_start, 1)
    print(f"total {total_seconds}s", flush=True)

    out_root = Path(args.out) if args.out is not None else checkpoint_dir()
    comparison = {r: {"l0": metrics[r]["l0"], "explained_variance": metrics[r]["explained_variance"],
                      "ce_loss_recovered_zero": metrics[r]["ce_loss_recovered_zero"],
                      "mean_max_cosine": cosines[r]["mean"]} for r in VARIANT_ROLES}
    cards = {}
    for role in ROLES:
        sae = trained[role]
        card = make_card(role, args, argv, sae, hook, metrics[role], cosines[role], histories[role], seconds[role],
                         total_seconds, layer_choice, comparison, features.get(role), store, train_rows)
        config = {"kind": "sae", "sae": sae.config()}
        write_checkpoint(out_root / role, config, sae.state_dict(), card, manifest=not args.no_manifest)
        cards[role] = card
    return cards


def not_reached(role, m, features) -> list[str]:
    missing = []
    if role in ("sae", "sae-b"):
        if not m["explained_variance"] >= 0.85:
            missing.append(f"explained variance {m['explained_variance']:.3f} < 0.85")
        if not m["l0"] <= 32:
            missing.append(f"L0 {m['l0']:.1f} > 32")
        if not m["dead_fraction"] <= 0.05:
            missing.append(f"dead fraction {m['dead_fraction']:.3f} > 0.05")
        if not m["ce_loss_recovered_zero"] >= 0.90:
            missing.append(f"CE loss recovered (zero ablation) {m['ce_loss_recovered_zero']:.3f} < 0.90")
    for c, f in (features or {}).items():
        if not f["heldout_precision_top100"] >= 0.8:
            missing.append(f"{c} feature {f['feature']}: held-out top-100 precision {f['heldout_precision_top100']} "
                           "< 0.8")
    return missing


def make_card(role, args, argv, sae, hook, m, cos, history, seconds, total_seconds, layer_choice, comparison,
              features, store, train_rows) -> dict:
    what = {"sae": "the main SAE (TopK)", "sae-b": "the main SAE's recipe with another seed (a parallel run)",
            "sae-topk": "TopK, for the variant comparison (the same weights as the main SAE)",
            "sae-relu": "ReLU with an L1 penalty, for the variant comparison",
            "sae-batchtopk": "BatchTopK, for the variant comparison",
            "sae-jumprelu": "JumpReLU with an L0 penalty, for the variant comparison",
            "sae-ortsae": "OrtSAE (BatchTopK with the orthogonality penalty), for the variant comparison"}[role]
    card = {
        "role": role, "what": what, "hook_name": hook, "model": "lite lm (mi_course.load_model('lm', mode='lite'))",
        "architecture": sae.config(),
        "input": "residual-stream activations [..., d_in] at hook_name (positions after BOS)",
        "training": {"function": "mi_course.saes.train_sae", "steps": args.steps, "batch_size": args.batch_size,
                     "lr": learning_rate(sae, args), "seed": sae.seed,
                     "data": f"activations of corpus.generate_documents({args.train_docs}, seed={args.seed}, "
                             f"split='train') packed into {len(train_rows)} rows of {train_rows.shape[1]} tokens "
                             f"({len(store):,} activations, BOS dropped)",
                     "final_log": history[-1]},
        "training_seconds": seconds, "script_seconds_total": total_seconds,
        "trained_on": f"1 CPU thread, torch {torch.__version__}, {platform.machine()}",
        "measured": {**m, "max_cosine_to_another_feature": cos,
                     "heldout": f"the first {args.metric_rows} rows of corpus.generate_documents({args.eval_docs}, "
                                f"seed={args.seed}, split='heldout') packed like the training rows; "
                                "mi_course.saes.sae_metrics"},
        "variants_at_matched_l0": comparison,
        "layer_choice": layer_choice,
        "regenerate": regenerate_command("scripts/train_saes.py", argv),
        "citation": "Bricken et al., 2023; Gao et al., 2024 (TopK); Bussmann et al., 2024 (BatchTopK); "
                    "Rajamanoharan et al., 2024 (JumpReLU); Korznikov et al., 2025 (OrtSAE)",
    }
    if features:
        card["features"] = {
            c: {**f, "label": LABELS[c], "documents": DOC_KIND[c]} for c, f in features.items()}
        card["features_how"] = (
            f"labels: mi_course.organisms.corpus.token_labels; chosen on search text "
            f"corpus.generate_documents({args.search_docs}, seed={args.seed + 1}, split='train') as the feature "
            f"with the highest share of labelled tokens among its {TOP_N} largest activations (token recall "
            f"breaking ties); measured on held-out corpus.generate_documents({args.eval_docs}, seed={args.seed}, "
            "split='heldout'): heldout_precision_top100 (that share), heldout_doc_recall (share of documents of "
            "the kind in which it fires on a labelled token), heldout_token_recall")
    card["not_reached"] = not_reached(role, m, features)
    return card


if __name__ == "__main__":
    main()
