"""``python -m mets_fast.examples``: the example records' paths, one per line."""

from . import names, path

for _name in names():
    print(path(_name))
