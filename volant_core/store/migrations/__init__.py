"""Numbered schema migrations, applied in order by :mod:`volant_core.store.migrate`.

Each module is named ``m<NNNN>_<name>.py`` and defines ``up(db)``, which runs
its statements on the given database inside the transaction the runner opened.
A migration is never edited once released: change the schema with a new one.
"""
