"""Cleaning and translating PTB-XL's machine-generated ECG reports.

PTB-XL's reports come from the ECG carts that recorded them: 71 % German, 28 % English, 1 %
Swedish, with the damage of several format conversions.  :func:`clean_report` repairs them and
translates the German and Swedish ones to English with a phrase table: the carts print
statements from a small, fixed vocabulary (``sinusrhythmus``, ``lagetyp normal``,
``linksanteriorer hemiblock`` ...), so a table of those statements, with a word table behind it
for the free text clinicians typed, translates them deterministically and reproducibly, with
no language model and no network.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["clean_report", "report_language"]


def clean_report(text: str, translate: bool = True) -> str:
    """A machine report, cleaned and (with `translate`) in English.

    Cleaning repairs the encoding damage (upper-case ``Ä Ö Ü Å`` inside lower-case words, ``#``
    standing for ``ü``), drops the device stamp (a software version such as ``4.46`` followed by
    ``unbestätigter bericht``, "unconfirmed report", often cut short), annotators' ``Edit:``
    notes and stray runs of spaces, and lower-cases the text.  Translation maps German and
    Swedish statements to the wording of PTB-XL's English reports, one sentence per statement
    (``"sinusrhythmus lagetyp normal normales ekg"`` becomes
    ``"sinus rhythm. normal axis. normal ecg."``); English reports are only cleaned.

    Raises TypeError for anything but a string (NaN from a missing CSV field included).
    """
    if not isinstance(text, str):
        raise TypeError(f"report must be a str, got {type(text).__name__}")
    text = _repair(text)
    if translate:
        language = report_language(text)
        if language != "en":
            text = _translate(text)
    return text


def report_language(text: str) -> str:
    """``"de"``, ``"sv"`` or ``"en"``: the language whose report vocabulary `text` uses most
    (English when it uses neither German nor Swedish statement words)."""
    tokens = [_fold(t) for t in _TOKEN.findall(text.lower())]
    german = sum(t in _GERMAN_MARKERS for t in tokens)
    swedish = sum(t in _SWEDISH_MARKERS for t in tokens)
    if not german and not swedish:
        return "en"
    return "de" if german >= swedish else "sv"


# ---------------------------------------------------------------------------------------------
# Repair
# ---------------------------------------------------------------------------------------------

_DAMAGED_UMLAUT = re.compile(r"(?<=[a-zäöüå])[ÄÖÜÅ]|[ÄÖÜÅ](?=[a-zäöüå])")
_EDIT_NOTE = re.compile(r"\bedit\s*:.*$", re.IGNORECASE | re.DOTALL)
# The cart's stamp: a version number, then "unbestätigter bericht" cut anywhere; or the phrase
# on its own (also cut) at the end.
_STAMP = re.compile(r"\s\d\.\d{1,2}\s.*$|\s\d\.\d{1,2}$|\s+unbest\S*(\s+\S*)?$")
_UNCONFIRMED = re.compile(r"\bunbestätigter bericht\b")


def _repair(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    text = _EDIT_NOTE.sub("", text)
    text = _DAMAGED_UMLAUT.sub(lambda m: m.group(0).lower(), text)
    text = text.replace("#", "ü").lower()
    text = _UNCONFIRMED.sub(" ", text)
    text = re.sub(r"\s+", " ", text).strip()
    text = _STAMP.sub("", " " + text).strip()
    return text


# ---------------------------------------------------------------------------------------------
# Translation
# ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[^\s]+")
_MAX_PHRASE = 10


def _fold(token: str) -> str:
    """Case-folded, umlauts written out, edge punctuation off: the key that both 'ü' and 'ue'
    spellings (and 'abnorm,' and 'abnorm') share."""
    token = token.lower().strip(",.;:!")
    # "(hebung)" and "hebung" alike, but "qrs(t)" and "extrasystole(n)" as they are
    if token.startswith("(") and ")" not in token[1:-1]:
        token = token[1:].rstrip(")")
    for a, b in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss"), ("å", "aa"), ("é", "e")):
        token = token.replace(a, b)
    return token


# Statements: each starts a sentence.  Qualifiers (in _QUALIFIERS) continue the sentence before.
_STATEMENTS = {
    # rhythm
    "sinusrhythmus": "sinus rhythm",
    "sinus rhythmus": "sinus rhythm",
    "sinusrytm": "sinus rhythm",
    "sinustachykardie": "sinus tachycardia",
    "sinus tachykardie": "sinus tachycardia",
    "sinustachykardi": "sinus tachycardia",
    "sinusbradykardie": "sinus bradycardia",
    "sinus bradykardie": "sinus bradycardia",
    "sinusbradykardi": "sinus bradycardia",
    "sinusarrhythmie": "sinus arrhythmia",
    "sinus arrhythmie": "sinus arrhythmia",
    "sinus arytmi": "sinus arrhythmia",
    "sinusarytmi": "sinus arrhythmia",
    "supraventrikuläre arrhythmie": "supraventricular arrhythmia",
    "supraventrikuläre tachykardie": "supraventricular tachycardia",
    "tachyarrhythmie": "tachyarrhythmia",
    "vorhofflimmern/-flattern": "atrial fibrillation/flutter",
    "vorhofflimmern/flattern": "atrial fibrillation/flutter",
    "vorhofflimmern": "atrial fibrillation",
    "voehofflimmern": "atrial fibrillation",
    "vorhofflattern": "atrial flutter",
    "tachykardes vorhofflimmern": "atrial fibrillation with rapid ventricular response",
    "tachykardes vorhofflattern": "atrial flutter with rapid ventricular response",
    "normokardes vorhofflimmern": "atrial fibrillation with normal ventricular rate",
    "bradykardes vorhofflimmern": "atrial fibrillation with slow ventricular response",
    "förmaksflimmer/-fladder": "atrial fibrillation/flutter",
    "förmaksflimmer": "atrial fibrillation",
    "förmaksfladder": "atrial flutter",
    "av-knotenrhythmus": "junctional rhythm",
    "av-rhythmus": "junctional rhythm",
    "beschleunigter av-rhythmus": "accelerated junctional rhythm",
    "regelmässiger rhythmus": "regular rhythm",
    "schrittmacher ekg": "pacemaker ecg",
    "schrittmacher-ekg": "pacemaker ecg",
    "schrittmacher": "pacemaker",
    # beats
    "ventrikuläre extrasystole(n)": "premature ventricular contraction(s)",
    "ventrikuläre extrasystolen": "premature ventricular contractions",
    "ventrikuläre extrasystole": "premature ventricular contraction",
    "ventrikulär(a) extrasystoli(er)": "premature ventricular contraction(s)",
    "ventrikulära extraslag": "premature ventricular contractions",
    "supraventrikuläre extrasystole(n)": "supraventricular premature contraction(s)",
    "supraventrikuläre extrasystolen": "supraventricular premature contractions",
    "supraventrikulär(a) extrasystoli(er)": "supraventricular premature contraction(s)",
    "vorhofs-es": "premature atrial contraction",
    "ves": "premature ventricular contraction",
    "sves": "supraventricular premature contraction",
    "bigeminus": "bigeminy",
    "trigeminus": "trigeminy",
    # axis
    "lagetyp normal": "normal axis",
    "normaler lagetyp": "normal axis",
    "linkstyp": "left axis",
    "linkslagetyp": "left axis",
    "überdrehter linkstyp": "left axis deviation",
    "überdreht linkstyp": "left axis deviation",
    "rechtstyp": "right axis",
    "überdrehter rechtstyp": "right axis deviation",
    "extrem überdrehter rechtstyp": "extreme right axis deviation",
    "extrem überdrehter linkstyp": "extreme left axis deviation",
    "steiltyp": "vertical axis",
    "steillagetyp": "vertical axis",
    "sagittaltyp": "sagittal axis",
    "schwierig bestimmbare qrs-achse": "indeterminate qrs axis",
    "qrs-achse schwierig bestimmbar": "indeterminate qrs axis",
    "vänster el-axel": "left axis deviation",
    "extrem vänster el-axel": "extreme left axis deviation",
    "höger el-axel": "right axis deviation",
    "extrem höger el-axel": "extreme right axis deviation",
    "normal el-axel": "normal axis",
    # overall
    "normales ekg": "normal ecg",
    "sonst normales ekg": "otherwise normal ecg",
    "wahrscheinlich normales ekg": "probably normal ecg",
    "normalt ekg": "normal ecg",
    "eljest normalt ekg": "otherwise normal ecg",
    "pathologisches ekg": "abnormal ecg",
    "pathologsiches ekg": "abnormal ecg",
    "path. ekg": "abnormal ecg",
    "path.ekg": "abnormal ecg",
    "ekg pathologisch": "abnormal ecg",
    "pathologisch": "abnormal",
    "grenzbefund": "borderline ecg",
    "ruhe-ekg zur belastung": "resting ecg before exercise",
    "belastungs-ekg": "exercise ecg",
    # voltage and hypertrophy
    "periphere niederspannung": "low voltage in limb leads",
    "niederspannung": "low voltage",
    "låga qrs amplituder i extremitetsavledningarna": "low qrs voltages in the limb leads",
    "linkshypertrophie": "left ventricular hypertrophy",
    "links-ventrikel-hypertrophie": "left ventricular hypertrophy",
    "linksventrikuläre hypertrophie": "left ventricular hypertrophy",
    "rechtshypertrophie": "right ventricular hypertrophy",
    "kammerhypertrophie": "ventricular hypertrophy",
    "mässige amplitudenkriterien für linkshypertrophie":
        "moderate voltage criteria for left ventricular hypertrophy",
    "amplitudenkriterien für linkshypertrophie": "voltage criteria for left ventricular hypertrophy",
    "vänster kammarhypertrofi": "left ventricular hypertrophy",
    "höger kammarhypertrofi": "right ventricular hypertrophy",
    "måttliga amplitudkrit för vänster kammarhypertrofi":
        "moderate voltage criteria for left ventricular hypertrophy",
    "p-sinistrocardiale": "left atrial enlargement",
    "p-sinistrocardiale:": "left atrial enlargement",
    "p-dextrocardiale": "right atrial enlargement",
    "p-verbreiterung": "broad p wave",
    "vorhofsüberlastung": "atrial overload",
    # conduction
    "rechtsschenkelblock": "right bundle branch block",
    "rechts schenkelblock": "right bundle branch block",
    "unvollständiger rechtsschenkelblock": "incomplete right bundle branch block",
    "vollständiger rechtsschenkelblock": "complete right bundle branch block",
    "linksschenkelblock": "left bundle branch block",
    "unvollständiger linksschenkelblock": "incomplete left bundle branch block",
    "vollständiger linksschenkelblock": "complete left bundle branch block",
    "linksanteriorer hemiblock": "left anterior fascicular block",
    "linksposteriorer hemiblock": "left posterior fascicular block",
    "bifaszikulärer block": "bifascicular block",
    "unspezifischer intraventrikulärer block": "non-specific intraventricular block",
    "unspezifische intraventrikuläre leitungsstörung":
        "non-specific intraventricular conduction disturbance",
    "intraventrikuläre leitungsstörung": "intraventricular conduction disturbance",
    "a-v block i": "first degree av block",
    "av-block 1.grades": "first degree av block",
    "av-block i": "first degree av block",
    "a-v block ii": "second degree av block",
    "vänstersidigt skänkelblock": "left bundle branch block",
    "högersidigt skänkelblock": "right bundle branch block",
    "inkomplett vänstersidigt skänkelblock": "incomplete left bundle branch block",
    "inkomplett högersidigt skänkelblock": "incomplete right bundle branch block",
    "ospecifikt skänkelblock": "non-specific bundle branch block",
    "ospecifikt inkomplett skänkelblock": "non-specific incomplete bundle branch block",
    "vänster anteriort hemiblock": "left anterior fascicular block",
    "vänster posteriort hemiblock": "left posterior fascicular block",
    "bifascikulärt block": "bifascicular block",
    # repolarisation and ischaemia
    "qrs(t) abnorm": "qrs(t) abnormal",
    "qrs(t) abnormal": "qrs(t) abnormal",
    "avvikande qrs(t) förlopp": "qrs(t) abnormal",
    "st & t abnorm": "st & t abnormal",
    "st & t abnormal": "st & t abnormal",
    "st abnorm": "st abnormal",
    "t abnorm": "t abnormal",
    "t abnormal": "t abnormal",
    "unspezifisches abnormes t": "non-specific abnormal t wave",
    "unspezifisches abnormales t": "non-specific abnormal t wave",
    "unspezifische abnorme st-senkung": "non-specific st depression",
    "unspezifisch abnormes st-t": "non-specific st-t abnormality",
    "st-senkung": "st depression",
    "st- senkung": "st depression",
    "st-hebung": "st elevation",
    "st- hebung": "st elevation",
    "st-t sänkning": "st-t depression",
    "t-förändring": "t wave change",
    "ospecifik t-förändring": "non-specific t wave change",
    "qt-verlängerung": "prolonged qt",
    "qt förlängd": "prolonged qt",
    "t-veränderungen": "t wave changes",
    "t-veränderung": "t wave change",
    "digitalisveränderung": "digitalis effect",
    "verzögerte r-progression": "poor r wave progression",
    "schlechte r-progression": "poor r wave progression",
    "keine r- progression": "no r wave progression",
    "fehlende r-progression": "absent r wave progression",
    "r-s übergang in v ableitungen nach rechts verschoben":
        "r/s transition in chest leads shifted to the right",
    "r-s übergang in v ableitungen nach links verschoben":
        "r/s transition in chest leads shifted to the left",
    "verdacht auf": "suspected",
    # infarction and damage on their own (with a location: _located_statements below)
    "infarkt": "infarction",
    "myokardschaden": "myocardial damage",
    "innenschichtsschaden": "subendocardial damage",
    "myokardskada": "myocardial damage",
    "myokard- perikardschaden": "myocardial and pericardial damage",
    "ischemiförändringar": "ischaemic changes",
    "trace only requested": "trace only requested",
}



def _located_statements() -> dict:
    """'<age> <location> <lesion>' statements, as the carts print them: "inferiorer infarkt",
    "chronischer anteroseptaler infarkt", "hög lateral myokardskada" ..."""
    german_places = {"inferiorer": "inferior", "anteroseptaler": "anteroseptal",
                     "anteriorer": "anterior", "anterolateraler": "anterolateral",
                     "hochlateraler": "high lateral", "lateraler": "lateral",
                     "inferolateraler": "inferolateral", "posteriorer": "posterior",
                     "septaler": "septal", "anteriorer inferiorer": "anterior and inferior"}
    german_lesions = {"infarkt": "infarction", "myokardschaden": "myocardial damage",
                      "innenschichtsschaden": "subendocardial damage"}
    german_ages = {"": "", "chronischer ": "chronic ", "akuter ": "acute ",
                   "subakuter ": "subacute ", "alter ": "old ", "neuer ": "new "}
    swedish_places = {"inferior": "inferior", "anterior": "anterior",
                      "anteroseptal": "anteroseptal", "anterolateral": "anterolateral",
                      "lateral": "lateral", "hög lateral": "high lateral", "septal": "septal",
                      "inferolateral": "inferolateral", "posterior": "posterior"}
    swedish_lesions = {"infarkt": "infarction", "myokardskada": "myocardial damage"}
    swedish_ages = {"": "", "gammal ": "old ", "akut ": "acute "}
    out = {}
    for places, lesions, ages in ((german_places, german_lesions, german_ages),
                                  (swedish_places, swedish_lesions, swedish_ages)):
        for age, age_en in ages.items():
            for place, place_en in places.items():
                for lesion, lesion_en in lesions.items():
                    out[f"{age}{place} {lesion}"] = f"{age_en}{place_en} {lesion_en}"
    return out


_STATEMENTS.update(_located_statements())

# Phrases that qualify the statement before them (no new sentence).
_QUALIFIERS = {
    "wahrscheinlich alt": "probably old",
    "wahrscheinlich chronisch": "probably chronic",
    "alter unbest": "age undetermined",
    "alter unbest.": "age undetermined",
    "alter": "age undetermined",
    "möglich": "possible",
    "möglicherweise akut": "possibly acute",
    "möglicherweise": "possibly",
    "nicht auszuschliessen": "cannot be excluded",
    "wahrscheinlich": "probably",
    "oder": "or",
    "und": "and",
    "akut": "acute",
    "subakut": "subacute",
    "in": "in",
    "ableitungen": "leads",
    "sannolikt äldre": "probably old",
    "ålder ej bestämmbar": "age undetermined",
    "bör övervägas": "should be considered",
    "kan ej uteslutas": "cannot be excluded",
    "misstänkt": "suspected",
    "såsom vid": "as in",
    "eller": "or",
    "och": "and",
    "som inte fanns på ekg": "not present on ecg",
    "normokard": "normal rate",
    "normokard bis bradykard": "normal to slow rate",
    "bradykard": "slow rate",
    "tachykard": "rapid rate",
    "über": "over",
    "bei": "with",
    "mit": "with",
    "bis": "to",
    "nach": "after",
    "usw": "etc",
}

# Single words, for what the tables above do not cover (clinicians' free text, cut statements).
_WORDS = {
    "ischämie": "ischaemia", "ischemi": "ischaemia", "innenschichtischämie": "subendocardial ischaemia",
    "linksbelastung": "left ventricular strain", "belastning": "strain",
    "vänster": "left", "höger": "right", "hög": "high", "links": "left", "rechts": "right",
    "anteriore": "anterior", "anteriorer": "anterior", "anterioren": "anterior",
    "anteriort": "anterior", "posteriorer": "posterior", "posteriort": "posterior",
    "inferiore": "inferior", "inferiorer": "inferior", "inferioren": "inferior",
    "laterale": "lateral", "lateraler": "lateral", "lateralen": "lateral",
    "anterolaterale": "anterolateral", "anterolateraler": "anterolateral",
    "anterolateralen": "anterolateral", "anterolateralt": "anterolateral",
    "inferolaterale": "inferolateral", "inferolateraler": "inferolateral",
    "inferolateralen": "inferolateral", "inferolateralt": "inferolateral",
    "anteroseptale": "anteroseptal", "anteroseptaler": "anteroseptal",
    "anteroseptalen": "anteroseptal", "septaler": "septal",
    "hochlaterale": "high lateral", "hochlateraler": "high lateral",
    "hochlateralen": "high lateral", "vorderwand": "anterior wall", "basaler": "basal",
    "myokardaffektion": "myocardial involvement", "myokard": "myocardial",
    "affektion": "involvement", "kammarbelastning": "ventricular strain",
    "kammarhypertrofi": "ventricular hypertrophy", "kammarkhypertrofi": "ventricular hypertrophy",
    "skänkelblock": "bundle branch block", "schenkelblock": "bundle branch block",
    "hemiblock": "fascicular block", "block": "block", "leitungsstörung": "conduction disturbance",
    "extrasystole": "premature contraction", "extrasystolen": "premature contractions",
    "extrasystoli": "premature contraction", "extraslag": "premature beats",
    "ventrikuläre": "ventricular", "ventrikulär": "ventricular", "ventrikulära": "ventricular",
    "supraventrikuläre": "supraventricular", "supraventrikulärer": "supraventricular",
    "supraventr": "supraventricular", "intraventrikuläre": "intraventricular",
    "intraventrikulärer": "intraventricular", "intraventr": "intraventricular",
    "ventr": "ventricular", "ventr.es": "premature ventricular contraction",
    "unspezifisch": "non-specific", "unspezifische": "non-specific",
    "unspezifischer": "non-specific", "unspezifisches": "non-specific", "ospecifikt": "non-specific",
    "ospecifik": "non-specific", "abnorm": "abnormal", "abnorme": "abnormal",
    "abnormes": "abnormal", "abnormales": "abnormal", "pathologische": "abnormal",
    "pathologisches": "abnormal", "avvikande": "abnormal", "förlopp": "course",
    "normal": "normal", "normales": "normal", "normalt": "normal", "normaler": "normal",
    "normokardes": "normal rate", "normocard": "normal rate", "eljest": "otherwise",
    "sonst": "otherwise", "typ": "axis", "lagetyp": "axis", "el-axel": "electrical axis",
    "qrs-achse": "qrs axis", "achse": "axis", "überdrehter": "deviated", "überdreht": "deviated",
    "extrem": "extreme", "ableitung": "lead", "ableitungen": "leads", "ablei": "leads",
    "extremitetsavledningarna": "limb leads", "amplituder": "amplitudes", "låga": "low",
    "hebung": "elevation", "senkung": "depression", "sänkning": "depression",
    "st-hebung:": "st elevation", "st-senkung:": "st depression", "t-veränderungen:":
    "t wave changes", "neg": "negative", "negativ": "negative", "negatives": "negative",
    "flach": "flat", "flache": "flat", "flaches": "flat", "flach-neg": "flat negative",
    "abgeflacht": "flattened", "abgeflachtes": "flattened", "biphasisch": "biphasic",
    "bipolisch": "biphasic", "spitz": "peaked", "spitzes": "peaked", "zulaufend": "tapering",
    "deszendierend": "downsloping", "muldenförmig": "scooped", "term.neg": "terminally negative",
    "hoch": "high", "hohes": "tall", "vermindertes": "reduced", "angedeutet": "slight",
    "diskrete": "subtle", "deutlich": "marked", "partiell": "partial", "inkomplett": "incomplete",
    "unvollständiger": "incomplete", "vollständiger": "complete", "vollständig": "complete",
    "chronischer": "chronic", "chronisch": "chronic", "chron": "chronic", "akuter": "acute",
    "subakuter": "subacute", "neuer": "new", "alt": "old", "äldre": "older", "gammal": "old",
    "infarkt": "infarction", "infarkts": "infarction", "myokardschaden": "myocardial damage",
    "perikardschaden": "pericardial damage", "wahrscheinlich": "probably",
    "sannolikt": "probably", "möglich": "possible", "mögl": "possible", "möglicherweise":
    "possibly", "verdacht": "suspicion", "misstänkt": "suspected", "sicher": "definite",
    "sichere": "definite", "schwierig": "difficult", "bestimmbare": "to determine",
    "bestämmbar": "determinable", "ålder": "age", "alter": "age", "ej": "not", "nicht": "not",
    "keine": "no", "kein": "no", "fehlende": "absent", "fehlede": "absent", "kan": "can",
    "uteslutas": "be excluded", "auszuschliessen": "to be excluded", "bör": "should",
    "övervägas": "be considered", "såsom": "as", "vid": "in", "som": "as", "inte": "not",
    "fanns": "present", "på": "on", "för": "for", "für": "for", "und": "and", "oder": "or",
    "mit": "with", "bei": "with", "über": "over", "unter": "under", "von": "of", "vor": "before",
    "zur": "for", "zt": "partly", "i": "i", "och": "and", "eller": "or", "wie": "as",
    "bis": "to", "nach": "to the", "verschoben": "shifted", "übergang": "transition",
    "r-progression": "r wave progression", "progression": "progression", "p-welle": "p wave",
    "qt-verlängerung": "prolonged qt", "verlängert": "prolonged", "förlängd": "prolonged",
    "r-s": "r/s", "lage-q": "positional q", "voltage": "voltage", "low": "low",
    "tachykardie": "tachycardia", "bradykardie": "bradycardia", "tachykard": "rapid",
    "bradykard": "slow", "tachykardes": "rapid", "arrhythmie": "arrhythmia",
    "arytmi": "arrhythmia", "rhythmus": "rhythm", "rhythmus,": "rhythm",
    "uniforme": "uniform", "multiforme": "multiform", "2er-salve": "couplet", "salve": "salvo",
    "uniform": "uniform", "ekg": "ecg", "befund": "finding", "grenzbefund": "borderline finding",
    "kammerhypertrophie,": "ventricular hypertrophy", "belastung": "exercise",
    "digitalis-": "digitalis", "påverkan": "effect", "digitalisveraenderung": "digitalis effect",
    "vorhofflattern": "atrial flutter", "vorhofflimmern": "atrial fibrillation",
    "vorhofflimmern,": "atrial fibrillation", "vorhofsüberlastung": "atrial overload",
    "ventrikel": "ventricle", "rechtsschenkelblock": "right bundle branch block",
    "linksschenkelblock": "left bundle branch block", "innenschichtsschaden":
    "subendocardial damage", "myokardskada": "myocardial damage", "ischemiförändringar":
    "ischaemic changes", "förändring": "change", "kammarbelastning,": "ventricular strain",
    "pat": "patient", "uppgifter": "details", "saknas": "missing", "erguss": "effusion",
    "pneumonieverdacht": "suspected pneumonia", "diuretikaresistenter": "diuretic-resistant",
    "angestiegener": "increased", "abhehmend": "decreasing", "erkannt": "detected",
    "algemein": "general", "schrittmacher": "pacemaker", "sinusrhythmus": "sinus rhythm",
    "langsame": "slow", "regelmässiger": "regular", "beschleunigter": "accelerated",
    "dextrocardiale": "right atrial", "sinistrocardiale": "left atrial", "p-sinistrocardiale":
    "left atrial enlargement", "llt": "left axis", "mllt": "marked left axis",
    "mlt": "marked left axis", "slt": "vertical axis", "lll": "left axis", "ll": "left axis",
    "lsb": "left bundle branch block", "lahb": "left anterior fascicular block",
    "lah": "left anterior hemiblock", "re": "right", "l": "left", "es": "premature contraction",
    "bsg": "esr", "sokolow": "sokolow", "ca": "about", "auf": "on", "periphere": "peripheral",
    "schlechte": "poor", "überhöht": "exaggerated", "als": "as", "vd": "suspected",
    "vorhofüberbelastung": "atrial overload", "vorhofsüberbelastung": "atrial overload",
    "unterschiedlicher": "variable", "überleitung": "conduction", "intermitier": "intermittent",
    "unspez": "non-specific", "repol.-störung": "repolarisation disturbance",
    "digitalisierung": "digitalisation", "tachykardem": "rapid", "vhf": "atrial fibrillation",
    "fraglich": "questionable", "diffuse": "diffuse", "seitenlagetyp": "horizontal axis",
    "ischamie": "ischaemia", "niedervoltage": "low voltage", "zweigipfliges": "bifid",
    "allen": "all", "måttliga": "moderate", "amplitudkrit": "voltage criteria",
    "horisontalstäld": "horizontal", "elektrisk": "electrical", "axel": "axis",
    "inget": "no", "säkert": "definite", "patologiskt": "pathological",
}

# Words that mark a report as German or Swedish (the source vocabularies of the tables).
_SWEDISH_WORDS = {
    "sinusrytm", "förmaksflimmer/-fladder", "förmaksflimmer", "vänster", "höger", "el-axel",
    "såsom", "vid", "eller", "sänkning", "myokardaffektion", "kammarhypertrofi", "skänkelblock",
    "avvikande", "förlopp", "sannolikt", "äldre", "misstänkt", "bör", "övervägas", "ej",
    "uteslutas", "vänstersidigt", "högersidigt", "normalt", "eljest", "låga", "amplituder",
    "extremitetsavledningarna", "myokardskada", "ischemi", "belastning", "förlängd",
    "t-förändring", "ospecifikt", "ospecifik", "inkomplett", "extrasystoli(er)", "ventrikulär(a)",
    "supraventrikulär(a)", "arytmi", "hög", "ålder", "bestämmbar", "gammal", "kan", "och",
    "anteriort", "posteriort", "bifascikulärt", "sinustachykardi", "ischemiförändringar",
}


def _keys(table) -> dict:
    return {" ".join(_fold(t) for t in k.split()): v for k, v in table.items()}


_STATEMENT_KEYS = _keys(_STATEMENTS)
_QUALIFIER_KEYS = _keys(_QUALIFIERS)
_WORD_KEYS = _keys(_WORDS)
_SWEDISH_MARKERS = {_fold(w) for w in _SWEDISH_WORDS}
# German markers: the source words of the tables that are not Swedish and never appear in the
# English wording (nor in a few abbreviations English reports share).
_TABLES = (_STATEMENT_KEYS, _QUALIFIER_KEYS, _WORD_KEYS)
_ENGLISH_VOCABULARY = {_fold(w) for table in _TABLES for v in table.values() for w in v.split()}
_GERMAN_MARKERS = (
    {w for table in _TABLES for k in table for w in k.split()}
    - _SWEDISH_MARKERS - _ENGLISH_VOCABULARY
    - {"l", "re", "ll", "ca", "pat", "es", "bsg", "sokolow", "ves", "sves", "lvh", "t", "st",
       "qrs", "lsb", "lah", "lahb", "lll", "slt", "mlt", "llt", "mllt", "g", "v", "i", "ii",
       "iii", "alt", "akut"}
)


def _translate(text: str) -> str:
    tokens = _TOKEN.findall(text)
    folded = [_fold(t) for t in tokens]
    sentences: list[list[str]] = []
    i = 0
    while i < len(tokens):
        for length in range(min(_MAX_PHRASE, len(tokens) - i), 0, -1):
            key = " ".join(folded[i:i + length])
            # a comma after the phrase's last word belongs to the translation too
            comma = "," if tokens[i + length - 1].endswith(",") else ""
            if key in _STATEMENT_KEYS:
                sentences.append([_STATEMENT_KEYS[key] + comma])
                break
            if key in _QUALIFIER_KEYS:
                _continue(sentences, _QUALIFIER_KEYS[key] + comma)
                break
            if length == 1:
                word = _WORD_KEYS.get(key)
                # lead names, numbers and English words pass through as they are
                word = tokens[i].rstrip(";:") if word is None else word + comma
                if word:
                    _continue(sentences, word)
        i += length
    text = ". ".join(" ".join(s).rstrip(",") for s in sentences if s)
    text = re.sub(r"\s+([,.;:])", r"\1", text)
    return (text + ".") if text else text


def _continue(sentences: list, words: str) -> None:
    if sentences:
        sentences[-1].append(words)
    else:
        sentences.append([words])
