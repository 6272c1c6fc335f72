"""Every fenced block of docs/*.md and of the README is checked by its tag (the rule docs/README.md states):
python blocks run in a fresh process in a temporary folder, toml blocks go through the config parser, every bash
line is a command of the suite's own parsers (or a Makefile target), and only ```text is left alone. Worked
examples (blocks that open with `# <file>.py` / `# <file>.toml`) are run whole by their page's own test."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.docs_pages import DOCS, README, ROOT, code_blocks, named_files

LANGUAGES = {"python", "toml", "bash", "text"}
#: page -> the test that runs its worked examples (or, for a notebook page, all its python blocks in order)
RUN_BY = {"adding_an_estimator.md": "tests/test_docs_adding_an_estimator.py",
          "your_model_and_data.md": "tests/test_docs_own_model.py", "python_api.md": "tests/test_api_docs.py"}
NOTEBOOK_PAGES = {"python_api.md"}  # cells share one namespace: run in order by their own test only
#: what a toml fragment is parsed over: a small run of a preset (a fragment with [model] drops the preset)
BASE = {"run": {"preset": "fashion", "steps": 20, "num_samples": 64, "keep": 48, "batch_size": 16, "bootstrap": 10}}
#: repository paths a command may name, which must exist
CHECKED_PATHS = ("configs/", "results/baselines/", "examples/")
PAGES = [*sorted(DOCS.glob("*.md")), README]


def all_blocks() -> list[tuple[Path, int, str, str]]:
    return [(page, i, language, body) for page in PAGES
            for i, (language, body) in enumerate(code_blocks(page.read_text(encoding="utf-8")))]


BLOCKS = all_blocks()


def block_id(block) -> str:
    page, i, language, _ = block
    return f"{page.relative_to(ROOT)}#{i + 1}-{language}"


def of(language: str) -> list:
    return [pytest.param(b, id=block_id(b)) for b in BLOCKS if b[2] == language]


def test_every_block_has_a_tag_this_test_knows():
    text = {page: page.read_text(encoding="utf-8") for page in PAGES}
    untagged = [page.name for page, body in text.items()
                if len(re.findall(r"^```", body, re.M)) != 2 * len(code_blocks(body))]
    assert not untagged, f"fenced blocks without a tag in {untagged}: tag them python, toml, bash or text"
    unknown = [block_id(b) for b in BLOCKS if b[2] not in LANGUAGES]
    assert not unknown, f"tag these python, toml, bash or text: {unknown}"
    assert {b[2] for b in BLOCKS} >= {"python", "toml", "bash", "text"}


def test_worked_examples_are_run_by_their_page_test():
    for page in PAGES:
        files = named_files(code_blocks(page.read_text(encoding="utf-8")))
        if files or page.name in NOTEBOOK_PAGES:
            assert page.name in RUN_BY, f"{page.name} has worked examples {sorted(files)}: name the test that runs them"
            test = (ROOT / RUN_BY[page.name]).read_text()
            assert f'"{page.name}"' in test, f"{RUN_BY[page.name]} does not read {page.name}"


# --- python -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("block", of("python"))
def test_python_block(block, tmp_path):
    page, _, _, body = block
    if named_files([("python", body)]):  # a file of a worked example: it compiles; its page test runs it
        compile(body, block_id(block), "exec")
        return
    if page.name in NOTEBOOK_PAGES:
        compile(body, block_id(block), "exec")
        return
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "UQBENCH_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", body], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"{block_id(block)} failed:\n{done.stderr[-3000:]}"


# --- toml ---------------------------------------------------------------------------------------------------------

def merged(fragment: dict) -> dict:
    config = {section: dict(values) for section, values in BASE.items()}
    for section, values in fragment.items():
        config[section] = {**config.get(section, {}), **values}
    if "model" in fragment and "preset" not in fragment.get("run", {}):
        config["run"].pop("preset", None)
    return config


@pytest.mark.parametrize("block", of("toml"))
def test_toml_block(block, tmp_path):
    from benchmark.config import RUN_KEYS, SECTIONS, parse_config

    _, _, _, body = block
    data = tomllib.loads(body)
    if named_files([("toml", body)]):  # a worked example's config: known sections and keys; its page test runs it
        assert set(data) <= set(SECTIONS) and set(data.get("run", {})) <= set(RUN_KEYS), block_id(block)
        return
    if "my_model" in body:
        from tests.test_docs_adding_an_estimator import make_model_folder, make_png_folder

        make_model_folder(tmp_path / "my_model")
        make_png_folder(tmp_path / "my_images")
    config = parse_config(merged(data), source=str(tmp_path / "fragment.toml"))
    for section, values in data.items():  # every key of the fragment arrived in the parsed config
        if section in ("estimators", "protocols"):
            assert set(values) <= set(config.to_dict()[section]), (section, values)


# --- bash ---------------------------------------------------------------------------------------------------------

def commands(body: str) -> list[list[str]]:
    """The block's commands, `\\` continuations joined and comments dropped."""
    text = body.replace("\\\n", " ")
    return [argv for line in text.splitlines() if (argv := shlex.split(line, comments=True))]


def suite_arguments(argv: list[str]) -> tuple[str, list[str]] | None:
    """(module, arguments) of `[.venv/bin/]python -m M ...` or `torchrun ... -m M ...`."""
    if "-m" not in argv or not (Path(argv[0]).name.startswith("python") or argv[0] == "torchrun"):
        return None
    at = argv.index("-m")
    if argv[at + 1] == "torch.distributed.run":
        rest = argv[at + 2:]
        return suite_arguments(["torchrun", *rest])
    return argv[at + 1], argv[at + 2:]


def check_suite_command(module: str, args: list[str]) -> None:
    if module == "benchmark":
        from benchmark.cli import _parser
        from benchmark.training.command import build_parser

        if args[:1] == ["train"]:
            parser, args = build_parser(), args[1:]
        else:
            parser = _parser()
        if "--help" in args:
            with pytest.raises(SystemExit) as done:
                parser.parse_args(args)
            assert done.value.code == 0
            return
        parser.parse_args(args)  # a bad flag or value: SystemExit(2) with the parser's one-line error
    elif module in ("estimators.cards", "benchmark.cli.doc_tables"):
        import importlib

        source = Path(importlib.import_module(module).__file__).read_text()
        for flag in (a for a in args if a.startswith("--")):
            assert f'"{flag}"' in source, (module, flag)
    else:
        raise AssertionError(f"`python -m {module}` is not a command of the suite: tag the block text")
    for arg in args:
        if arg.startswith(CHECKED_PATHS):
            assert (ROOT / arg).exists(), f"{arg} does not exist in the repository"


@pytest.mark.parametrize("block", of("bash"))
def test_bash_block(block):
    targets = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))
    found = commands(block[3])
    assert found, block_id(block)
    for argv in found:
        if argv[0] == "make":
            assert set(a for a in argv[1:] if "=" not in a) <= targets, (argv, sorted(targets))
            continue
        suite = suite_arguments(argv)
        assert suite is not None, f"{block_id(block)}: {shlex.join(argv)} is not a suite command: tag the block text"
        check_suite_command(*suite)


# --- the README keeps what it must --------------------------------------------------------------------------------

def test_the_readme_keeps_install_the_two_commands_a_quick_start_and_links():
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text
    quick = text.split("## Quick start", 1)[1]
    [(language, body)] = code_blocks(quick)[:1]
    assert language == "bash" and len(body.strip().splitlines()) <= 10
    linked = set(re.findall(r"\]\(docs/([\w.]+)\)", text))
    assert linked == {p.name for p in DOCS.glob("*.md")}, "the README links every docs page, and only those"


def test_no_paragraph_of_a_docs_page_is_also_in_the_readme():
    """Moved, not copied: the README holds no paragraph (or code block) that a docs page holds."""
    def paragraphs(text: str) -> set[str]:
        return {" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if len(p.split()) >= 8}

    readme = paragraphs(README.read_text(encoding="utf-8"))
    for page in DOCS.glob("*.md"):
        assert not readme & paragraphs(page.read_text(encoding="utf-8")), page.name
