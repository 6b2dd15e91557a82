"""Split files and folder listings of the RGB-T datasets, read alike by every class.

- Text files are read as ``utf-8-sig``: editors on Windows write a byte-order mark,
  which would otherwise stick to the first name of the file.
- A name listed twice is an error (:func:`refuse_duplicates`): it would count the
  frame twice in training and in the test metric.
- File suffixes match whatever their case (``010002.JPG`` for ``.jpg``), in folder
  listings (:func:`list_folder_stems`) and when a sample's files are looked up
  (:class:`CaseResolver`).
"""
import os
import os.path as osp
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from mmengine.fileio import list_from_file

#: Encoding of every text file the datasets parse (split lists, annotations).
TEXT_ENCODING = 'utf-8-sig'


def read_split_lines(path: str) -> List[Tuple[int, str]]:
    """``(line number, stripped text)`` of the non-blank lines of a text file."""
    return [
        (number, line.strip())
        for number, line in enumerate(list_from_file(path, encoding=TEXT_ENCODING), 1)
        if line.strip()
    ]


def strip_suffix(name: str, suffixes: Iterable[str]) -> str:
    """``name`` without the first of ``suffixes`` it ends with, whatever the case."""
    lower = name.lower()
    for suffix in suffixes:
        if suffix and lower.endswith(suffix.lower()) and len(name) > len(suffix):
            return name[:-len(suffix)]
    return name


def refuse_duplicates(entries: Sequence[Tuple[int, str]],
                      path: str,
                      what: str = 'sample',
                      key: Optional[Callable[[str], object]] = None) -> None:
    """Raise if two lines of the split file ``path`` name the same sample.

    Args:
        entries (Sequence[tuple]): ``(line number, name)`` in file order.
        path (str): The split file, for the message.
        what (str): What a line names (``'sample'``, ``'frame'``).
        key (callable, optional): Maps a name to what identifies the sample, for
            names that differ but mean one sample; defaults to the name itself.

    Raises:
        ValueError: Naming the file, the first repeated name and its lines.
    """
    key = key or (lambda name: name)
    lines: Dict[object, List[int]] = {}
    names: Dict[object, str] = {}
    repeated = []
    for number, name in entries:
        k = key(name)
        if k in lines and len(lines[k]) == 1:
            repeated.append(k)
        lines.setdefault(k, []).append(number)
        names.setdefault(k, name)
    if not repeated:
        return
    k = repeated[0]
    numbers = lines[k]
    second = next(name for number, name in entries if number == numbers[1])
    count = 'twice' if len(numbers) == 2 else f'{len(numbers)} times'
    where = f'first on line {numbers[0]}'
    if second != names[k]:
        where += f' as {names[k]!r}'
    if len(numbers) > 2:
        where += f'; lines {", ".join(map(str, numbers))}'
    more = f'; {len(repeated) - 1} more name(s) are repeated too' \
        if len(repeated) > 1 else ''
    raise ValueError(
        f'{path}: line {numbers[1]}: {what} {second} is listed {count} '
        f'({where}){more}; it would count more than once in training and in the '
        'evaluation: remove the repeated lines')


def list_folder_stems(folder: str, suffix: str, owner: str) -> List[str]:
    """Sorted names of the files of ``folder`` ending with ``suffix`` in any case.

    Raises:
        ValueError: Two files differ only in the case of the suffix (one sample,
            twice).
    """
    found: Dict[str, List[str]] = {}
    lower = suffix.lower()
    for name in os.listdir(folder):
        if name.lower().endswith(lower) and len(name) > len(suffix):
            found.setdefault(name[:-len(suffix)], []).append(name)
    clashes = sorted(names for names in found.values() if len(names) > 1)
    if clashes:
        shown = '; '.join(' and '.join(sorted(names)) for names in clashes[:3])
        raise ValueError(f'{owner}: {folder} holds the same sample more than once, '
                         f'with suffixes differing only in case: {shown}; keep one')
    return sorted(found)


class CaseResolver:
    """The file on disk for a path whose suffix may differ in case.

    ``resolver('visible/010002.jpg')`` is ``'visible/010002.JPG'`` when only that
    file exists; a path that exists, or has no partner, comes back unchanged (the
    caller reports it missing). Each folder is listed once, and only when one of
    its files is not found as written.
    """

    def __init__(self):
        self._folders: Dict[str, Dict[Tuple[str, str], List[str]]] = {}

    def __call__(self, path: str) -> str:
        if not path or osp.isfile(path):
            return path
        folder, name = osp.split(path)
        stem, ext = osp.splitext(name)
        if not ext:
            return path
        index = self._folders.get(folder)
        if index is None:
            index = {}
            try:
                listing = os.listdir(folder or '.')
            except OSError:  # no folder: the caller names the missing file
                listing = []
            for entry in listing:
                entry_stem, entry_ext = osp.splitext(entry)
                index.setdefault((entry_stem, entry_ext.lower()), []).append(entry)
            self._folders[folder] = index
        found = index.get((stem, ext.lower()), [])
        if len(found) > 1:
            raise ValueError(f'{path} does not exist, and {folder} holds '
                             f'{sorted(found)}, which differ only in the case of '
                             'the suffix; keep one')
        return osp.join(folder, found[0]) if found else path

    def files(self, files: Dict[str, str]) -> Dict[str, str]:
        """``files`` (key -> path) with every path resolved."""
        return {k: self(v) if isinstance(v, str) else v for k, v in files.items()}
