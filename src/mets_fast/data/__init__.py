"""ECG data: WFDB readers (any record, PTB-XL, MIT-BIH), report cleaning, the synthetic
ECG-report corpus, the preprocessing contract and the memory-mapped store that training reads.

Layout: ``records.py`` / ``wfdb_fast.py`` read records; ``sources/`` holds one module per
source of ECGs (its reader and its default preprocessing); ``preprocess.py`` the preprocessing;
``store.py`` the store format; ``ingest.py`` writes a source into a store; ``spec.py`` parses
``--data``; ``cache.py`` keeps prepared stores.

Signals are float32 ``(leads, samples)`` arrays in mV with their sampling rate beside them.  This
package does not import torch.
"""

from .records import STANDARD_LEADS, Record, read_record, standard_lead
from .reports import clean_report, report_language
from .sources.mitbih import AAMI_CLASSES, METS_CLASSES, beat_windows, mitbih_windows, read_mitbih
from .sources.ptbxl import (
    ZERO_SHOT_TASKS,
    download_ptbxl,
    multilabel_test,
    read_ptbxl,
    zero_shot_set,
)
from .sources.synthetic import synthetic_corpus
from .store import ECGStore, StoreWriter

__all__ = [
    "read_record", "Record", "STANDARD_LEADS", "standard_lead",
    "read_ptbxl", "download_ptbxl", "zero_shot_set", "multilabel_test", "ZERO_SHOT_TASKS",
    "read_mitbih", "mitbih_windows", "beat_windows", "METS_CLASSES", "AAMI_CLASSES",
    "clean_report", "report_language",
    "synthetic_corpus",
    "ECGStore", "StoreWriter",
]
