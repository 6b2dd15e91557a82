"""Install mwam_mm: ``pip install -e .`` (the stack itself: tools/setup_env.sh)."""
import os.path as osp
from setuptools import find_packages, setup


def read_requirements(name):
    path = osp.join(osp.dirname(__file__), 'requirements', name)
    with open(path) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith('#')]


def read_version():
    namespace = {}
    with open(osp.join(osp.dirname(__file__), 'mwam_mm', 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


setup(
    name='mwam_mm',
    version=read_version(),
    description='MWAM/FRM modality balancing for RGB-thermal detection and '
    'segmentation in OpenMMLab',
    long_description=open('README.md').read() if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    python_requires='>=3.9',
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        'tests': read_requirements('tests.txt'),
        'deploy': read_requirements('deploy.txt')
    },
    license='Apache License 2.0',
    zip_safe=False,
)
