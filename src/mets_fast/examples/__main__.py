"""``python -m mets_fast.examples``: the shipped example records' paths, one per line."""

from . import RECORDS, path

for _name in RECORDS:
    print(path(_name))
