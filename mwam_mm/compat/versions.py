"""Import-time check of the OpenMMLab stack, with one message that says the fix.

mmdet and mmseg check mmcv's version with a bare ``assert`` deep in their import;
this check runs first, reads versions from package metadata (nothing is imported),
and lists every problem at once.
"""
import importlib.util
from importlib import metadata
from typing import List, Optional, Tuple

from packaging.specifiers import SpecifierSet
from packaging.version import Version

# (distribution, supported range, required)
SUPPORTED = (
    ('torch', '>=2.0', True),
    ('mmengine', '>=0.10.0,<1.0', True),
    ('mmcv', '>=2.0.0rc4,<2.2.0', True),
    ('mmdet', '>=3.1.0,<3.4.0', True),
    ('mmsegmentation', '>=1.1.0,<1.3.0', True),
)
FIX = ('Fix: run `bash tools/setup_env.sh` in the mwam_mm checkout (CPU), or see '
       'README "Installing on a GPU machine"; the verified versions are in '
       'requirements/constraints.txt.')


def _installed(dist: str) -> Optional[str]:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def find_version_problems(supported: Tuple = SUPPORTED) -> List[str]:
    problems = []
    for dist, spec, required in supported:
        version = _installed(dist)
        if version is None:
            if required:
                problems.append(f'{dist} is not installed (need {dist}{spec})')
            continue
        base = Version(version).base_version if '+' in version else version
        if Version(base) not in SpecifierSet(spec, prereleases=True):
            problems.append(f'{dist} {version} is installed, mwam_mm needs '
                            f'{dist}{spec}')
    if _installed('mmcv') and not problems_with('mmcv', problems):
        if importlib.util.find_spec('mmcv._ext') is None:
            problems.append('mmcv is installed without its compiled ops (mmcv._ext),'
                            ' which detectors need for NMS; rebuild it with '
                            'MMCV_WITH_OPS=1')
    return problems


def problems_with(dist: str, problems: List[str]) -> bool:
    return any(p.startswith(dist + ' ') for p in problems)


def check_versions() -> None:
    """Raise one ImportError listing every unsupported or missing package."""
    problems = find_version_problems()
    if problems:
        raise ImportError('mwam_mm cannot start with this environment:\n  - ' +
                          '\n  - '.join(problems) + '\n' + FIX)
