"""The inputs of a screening run: one :class:`Source` per scan, the unusable ones included.

``mriqc-nb screen`` takes files, folders, text files that list paths, and BIDS dataset roots.
:func:`discover` turns them into a list of :class:`Source`, one per scan, so that every
input gets exactly one row in the screening table, *also when it cannot be screened*: a
missing file, a broken symbolic link, a folder named like a scan (``x.nii.gz/``), a FIFO or
device, an unreadable file, an Analyze ``.img`` without its ``.hdr``. Those carry a
``problem`` (the error message of their row) and are never opened, so a FIFO cannot block
the run.

Names
-----
A file name is bytes on POSIX and need not be valid UTF-8 (``caf\\xe9.nii.gz`` written by a
Latin-1 system). Python keeps such bytes as "surrogate escapes" in ``str`` (PEP 383), which
open and nibabel accept but which cannot be written to a UTF-8 table. Each source therefore
has two forms: :attr:`Source.fspath`, to open the file, and :attr:`Source.path`, its
:func:`printable` form (every undecodable byte as ``\\xNN``, control characters escaped, a
backslash doubled), which is unique, fits a TSV cell and is turned back by
:func:`to_fspath`.

The resume key
--------------
:attr:`Source.path` is absolute, with ``.`` and ``..`` and symbolic links of the *folders*
resolved (the file's own name is kept, so a DataLad/git-annex file is not renamed to its
annex key). The same file given as ``scans/a.nii.gz`` and ``/data/scans/a.nii.gz`` is one
source, and a screening table keyed on ``path`` recognises it when resuming.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field

from . import bids
from .scans import SUPPORTED_SUFFIXES

__all__ = ["Source", "InputError", "LIST_SUFFIXES", "discover", "printable", "to_fspath"]

#: Endings of text files that list inputs, one path per line (blank lines and lines starting
#: with ``#`` are skipped; a relative path is relative to the list file's folder).
LIST_SUFFIXES = (".txt", ".lst", ".list")
_ANALYZE = (".img", ".hdr")


class InputError(ValueError):
    """A usage error in the inputs (a mistyped folder, nothing to screen): the command line
    exits with status 2 before screening anything."""


@dataclass(frozen=True)
class Source:
    """One scan to screen (or to report as unusable).

    Attributes
    ----------
    path : str
        Printable, absolute, folder-resolved path: the table's ``path`` column and the resume
        key (see the module notes). Unique per file.
    fspath : str
        The same path as the operating system names it (surrogate escapes for bytes that are
        not UTF-8): what to open.
    given : str
        Printable form of the path as it was given or found (relative paths stay relative).
    problem : str
        Empty if the file can be read; otherwise the error message for its row, starting
        with :attr:`path` (e.g. ``"/data/x.nii.gz: broken symbolic link to ..."``).
    entities : dict of str to str
        BIDS entities parsed from the name (:func:`mriqc_nb.bids.entities`); empty if the
        name is not a BIDS name.
    """

    path: str
    fspath: str
    given: str
    problem: str = ""
    entities: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def ok(self) -> bool:
        """True if nothing is known to be wrong (the scan itself may still be unusable)."""
        return not self.problem


# --------------------------------------------------------------------------------------------
# Printable names
# --------------------------------------------------------------------------------------------
def printable(text) -> str:
    """A printable, one-line, unique form of a file name (or of a message holding one).

    Bytes that are not valid UTF-8 (surrogate escapes ``U+DC80``-``U+DCFF``) become
    ``\\xNN``; control characters (tab, newline...) become ``\\xNN`` below U+0080 and
    ``\\uNNNN`` above; a backslash becomes two. Everything else, accented letters
    included, is kept. :func:`to_fspath` reverses it exactly.

    >>> printable(os.fsdecode(b"caf\\xe9\\tA.nii.gz"))
    'caf\\\\xe9\\\\x09A.nii.gz'
    """
    text = os.fsdecode(text) if isinstance(text, bytes) else str(text)
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


_ESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})")


def to_fspath(text: str) -> str:
    """The file name (as the OS names it) of a :func:`printable` form; the exact inverse."""
    def one(m: re.Match) -> str:
        esc = m.group(1)
        if esc == "\\":
            return "\\"
        code = int(esc[1:], 16)
        return chr(0xDC00 + code) if esc[0] == "x" and code >= 0x80 else chr(code)

    return _ESCAPE.sub(one, text)


# --------------------------------------------------------------------------------------------
# One path -> one Source
# --------------------------------------------------------------------------------------------
def _key(fspath: str) -> str:
    """Absolute path with the folders' symbolic links, ``.`` and ``..`` resolved."""
    absolute = os.path.abspath(fspath)
    return os.path.join(os.path.realpath(os.path.dirname(absolute)), os.path.basename(absolute))


def _is_scan_name(name: str) -> bool:
    return name.lower().endswith(SUPPORTED_SUFFIXES)


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _problem(fspath: str) -> str:
    """Why ``fspath`` cannot be screened, without opening it ("" if it looks readable)."""
    try:
        st = os.stat(fspath)
    except FileNotFoundError:
        if os.path.islink(fspath):
            return f"broken symbolic link to {printable(os.readlink(fspath))}"
        return "file not found"
    except OSError as exc:
        return f"cannot be examined ({exc.strerror})"
    if stat.S_ISDIR(st.st_mode):
        return "is a directory, not a scan file"
    if not stat.S_ISREG(st.st_mode):
        kind = next((what for test, what in _KINDS if test(st.st_mode)), "not a regular file")
        return f"is {kind}, not a scan file"
    if not _is_scan_name(os.path.basename(fspath)):
        return f"unsupported file type; expected one of {', '.join(SUPPORTED_SUFFIXES)}"
    if not os.access(fspath, os.R_OK):
        return "permission denied (not readable)"
    if fspath.lower().endswith(_ANALYZE) and not os.path.isfile(_twin(fspath)):
        return f"Analyze/NIfTI pair without its {_twin(fspath)[-4:]} file"
    return ""


def _twin(fspath: str) -> str:
    """The other file of an Analyze/NIfTI pair: ``x.img`` <-> ``x.hdr`` (``.IMG`` <-> ``.HDR``)."""
    ext = fspath[-4:]
    other = {".img": ".hdr", ".hdr": ".img", ".IMG": ".HDR", ".HDR": ".IMG"}
    return fspath[:-4] + other.get(ext, other[ext.lower()])


def _source(fspath: str, given: str | None = None, entities: dict | None = None) -> Source:
    """The :class:`Source` of one path; an Analyze pair is named by its ``.img``."""
    if fspath[-4:].lower() == ".hdr" and (os.path.lexists(_twin(fspath))
                                          or not os.path.lexists(fspath)):
        fspath = _twin(fspath)
    key = printable(_key(fspath))
    problem = _problem(fspath)
    if entities is None:
        entities = bids.entities(fspath)
    return Source(path=key, fspath=_key(fspath), given=printable(given or fspath),
                  problem=f"{key}: {problem}" if problem else "", entities=entities)


# --------------------------------------------------------------------------------------------
# Folders and lists
# --------------------------------------------------------------------------------------------
def _walk(folder: str) -> list[Source]:
    """Every scan-named entry below ``folder`` (hidden names skipped), sorted, loops cut."""
    out, seen = [], set()

    def failed(exc: OSError):
        name = exc.filename if isinstance(exc.filename, str) else folder
        out.append(Source(path=printable(_key(name)), fspath=_key(name), given=printable(name),
                          problem=f"{printable(_key(name))}: folder cannot be listed "
                                  f"({exc.strerror})"))

    for top, dirs, files in os.walk(folder, onerror=failed, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:  # a symbolic link back up the tree
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        names = [d for d in dirs if _is_scan_name(d)]  # folders named like scans: a row each
        for f in files:
            path = os.path.join(top, f)
            dangling = os.path.islink(path) and not os.path.exists(path)
            target = os.readlink(path) if dangling else ""
            if not f.startswith(".") and (_is_scan_name(f) or _is_scan_name(target)):
                names.append(f)
        for name in sorted(names):
            if name.lower().endswith(".hdr") and any(
                    n.lower() == name[:-4].lower() + ".img" for n in names):
                continue  # the pair is listed once, as its .img
            out.append(_source(os.path.join(top, name)))
    return out


def _read_list(list_file: str) -> list[str]:
    """Paths listed in a text file (bytes kept as surrogate escapes), relative to its folder."""
    with open(list_file, "rb") as fh:
        lines = fh.read().splitlines()
    base = os.path.dirname(os.path.abspath(list_file))
    paths = []
    for raw in lines:
        line = os.fsdecode(raw.strip())
        if line and not line.startswith("#"):
            paths.append(line if os.path.isabs(line) else os.path.join(base, line))
    return paths


def _expand(name: str, *, strict: bool) -> list[Source]:
    """Sources of one input. ``strict``: a missing path that is not named like a scan file is a
    usage error (a mistyped folder) rather than an error row."""
    if os.path.isdir(name) and not _is_scan_name(name.rstrip("/")):
        anat = bids.anat_scans(name) if bids.is_bids_root(name) else []
        if anat:
            return [_source(s.path, entities=s.entities) for s in anat]
        return _walk(name)  # a plain folder (or a BIDS root without anatomical scans)
    if os.path.isdir(name):  # a folder named like a scan: its row, then what it holds
        return [_source(name), *_walk(name)]
    is_list = name.lower().endswith(LIST_SUFFIXES)
    if not os.path.lexists(name) and strict and not _is_scan_name(name):
        what = "list file" if is_list else "file or folder"
        raise InputError(f"{printable(name)}: no such {what}")
    if is_list and os.path.isfile(name):
        try:
            listed = _read_list(name)
        except (OSError, UnicodeError) as exc:
            raise InputError(f"{printable(name)}: cannot read the list ({exc})") from exc
        return [s for path in listed for s in _expand(path, strict=False)]
    return [_source(name, given=name)]


def discover(inputs) -> list[Source]:
    """The sources of a screening run: one per scan, in input order, each file once.

    Parameters
    ----------
    inputs : path-like or sequence of path-like (str, bytes or os.PathLike)
        Any mix of:

        - a scan file (``.nii``, ``.nii.gz``, ``.img``/``.hdr``, ``.mnc``); one source,
          whatever it is (missing, a folder named ``x.nii.gz``, a FIFO...);
        - a folder: every entry below it named like a scan, sorted; hidden names (``.git``,
          ``._x.nii.gz``) skipped; broken symbolic links, FIFOs and folders named like
          scans included (as problems); an Analyze pair once, as its ``.img``;
        - a BIDS dataset root (:func:`mriqc_nb.bids.is_bids_root`): the anatomical scans of
          every subject and session (:func:`mriqc_nb.bids.anat_scans`), with entities;
        - a text file ending in :data:`LIST_SUFFIXES`: each line is an input as above, a
          relative one relative to the list's folder; a missing line is an error row.

    Returns
    -------
    list of Source
        One per scan; duplicates (the same :attr:`Source.path`, e.g. a file given relative
        and absolute, or in two inputs) are kept once, at their first place.

    Raises
    ------
    InputError
        An input that does not exist and is not named like a scan file (a mistyped folder
        or list), an unreadable list, or nothing to screen at all (an empty folder).
    """
    if isinstance(inputs, (str, bytes, os.PathLike)):
        inputs = [inputs]
    found: dict[str, Source] = {}
    for item in inputs:
        for src in _expand(os.fsdecode(item), strict=True):
            found.setdefault(src.path, src)
    if not found:
        names = " ".join(printable(os.fsdecode(i)) for i in inputs)
        raise InputError(f"no .nii, .nii.gz, .img/.hdr or .mnc file in {names or 'the inputs'}")
    return list(found.values())
