"""The README's layout and command tables match the tree: every module is where the README says, and no more."""
import glob
import os
import re

from conftest import ROOT


def readme_rows(heading):
    """{first cell: second cell} of the table under README's ``## heading``."""
    text = open(os.path.join(ROOT, 'README.md'), encoding='utf-8').read()
    section = text.split('\n## %s\n' % heading, 1)[1].split('\n## ', 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if line.startswith('|') and len(cells) >= 2 and not set(cells[0]) <= set('-'):
            rows[cells[0]] = cells[1]
    return rows


def modules(directory):
    """The .py modules of ``directory`` (relative to the repository), __init__.py left out."""
    return {os.path.basename(p) for p in glob.glob(os.path.join(ROOT, directory, '*.py'))} - {'__init__.py'}


def named_modules(cell):
    return set(re.findall(r'`([a-z_]+\.py)`', cell))


def test_each_package_row_names_exactly_the_modules_of_its_package():
    rows = readme_rows('Layout')
    packages = [path.strip('`') for path in rows if re.fullmatch(r'`resnet_graph/[a-z_]+/`', path)]
    on_disk = {os.path.relpath(p, ROOT) + '/' for p in glob.glob(os.path.join(ROOT, 'resnet_graph', '*', ''))
               if os.path.exists(os.path.join(p, '__init__.py'))}
    assert set(packages) == on_disk
    top_level = {path.strip('`') for path in rows if '/' not in path}  # config.py, data_loader.py: referred to
    for package in packages:
        assert named_modules(rows['`%s`' % package]) - top_level == modules(package), package
    assert named_modules(rows['`scripts/`']) == modules('scripts')


def test_every_top_level_module_is_a_listed_command_or_named_in_the_layout():
    layout, commands = readme_rows('Layout'), readme_rows('Commands')
    named = set()
    for path, cell in layout.items():
        if not path.endswith('/`') and path.startswith('`resnet_graph/'):
            named |= named_modules(path.replace('`, `', '` `')) | {os.path.basename(path.split('`')[1])}
    for name in modules('resnet_graph'):
        source = open(os.path.join(ROOT, 'resnet_graph', name), encoding='utf-8').read()
        if 'def cli_main' in source:
            assert '`%s`' % name[:-3] in commands, name  # python -m resnet_graph.<command>
        else:
            assert name in named, name
