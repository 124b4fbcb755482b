"""The code that builds the lite model organisms, apart from the lesson helpers: the generated text corpus
(:mod:`~mi_course.organisms.corpus`), the word-level tokenizer (:mod:`~mi_course.organisms.tokenizer`), the
language models' training loop (:mod:`~mi_course.organisms.train`) and the procedural image set the vision
organisms learn from (:mod:`~mi_course.organisms.images`). The training scripts under ``scripts/`` use them;
lessons use the corpus's prompt generators (IOI, greater-than, facts) and labels.
"""
