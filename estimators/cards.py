"""Estimator cards: what each registered estimator is, generated from the registry (never written by hand).

A card holds the estimator's name, paper, kind, whether it is a reference row, what it needs from the model,
its extra NFEs per sample as a formula, and its parameters with their defaults. Classes declare the facts as
class attributes `paper`, `needs` and `nfe_formula` (kind / reference_row come from estimators.base); the
built-in estimators written before cards existed get theirs from `KNOWN_FACTS`.

    python -m benchmark list --estimators          # the cards as text
    python -m estimators.cards --write-docs        # regenerate docs/estimators.md's table (tests check it is current)
"""
from __future__ import annotations

import argparse
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path

import estimators
from estimators.requirements import requirements_of

#: the docs page that holds the generated table between the START and END markers
PAGE = Path(__file__).resolve().parent.parent / "docs" / "estimators.md"
START, END = "<!-- estimator-cards:start -->", "<!-- estimator-cards:end -->"
#: (paper, needs, extra NFEs per sample) of built-in estimators whose classes do not declare them
KNOWN_FACTS: dict[str, tuple[str, str, str]] = {
    "sensitivity": ("De Vita & Belagiannis, WACV 2025 (arXiv 2412.00205), Alg. 1", "eps only", "m x window steps"),
    "bayesdiff": ("Kou et al., BayesDiff, ICLR 2024", "last layer + features, Laplace fit on training images",
                  "mc_samples x (uncertainty steps - 1), x2 for dpm2 (+1 per uncertainty step without shared "
                  "features); 90 for DDIM 50, skip 5, S 10"),
    "mc_dropout": ("Gal & Ghahramani, ICML 2016 (MC-Dropout)", "dropout layers", "m x window steps"),
    "random": ("floor (random scores)", "nothing", "0"),
}


@dataclass(frozen=True)
class EstimatorCard:
    name: str
    paper: str
    kind: str
    reference_row: bool
    needs: str
    extra_nfe: str
    parameters: str  # "m = 5, window = [45, 49], ..." (the config's spelling)


def card(name: str) -> EstimatorCard:
    """The card of the registered estimator `name`."""
    cls = estimators.get_class(name)
    paper, needs, nfe = KNOWN_FACTS.get(name, ("", "", ""))
    supplied = requirements_of(cls).supplied_arguments()  # objects the run hands over, not config values
    params = [p for p in estimators.parameters(name) if p not in supplied]
    return EstimatorCard(
        name=name, paper=getattr(cls, "paper", paper) or "(not stated)", kind=getattr(cls, "kind", "heuristic"),
        reference_row=bool(getattr(cls, "reference_row", False)), needs=getattr(cls, "needs", needs) or requirements_of(cls).describe(),
        extra_nfe=getattr(cls, "nfe_formula", nfe) or "(not stated)",
        parameters=", ".join(parameter_text(cls, p) for p in params) or "(none)")


def builtin_names() -> list[str]:
    """Registered estimators that ship with the package (plug-ins and test doubles left out)."""
    return [n for n in estimators.available() if estimators.get_class(n).__module__.startswith("estimators.")]


def cards(names: list[str] | None = None) -> list[EstimatorCard]:
    return [card(n) for n in (builtin_names() if names is None else names)]


def markdown_table(entries: list[EstimatorCard]) -> str:
    """One Markdown row per card (pipes in the texts escaped)."""
    head = ["estimator", "paper", "kind", "needs from the model", "extra NFEs per sample", "parameters (defaults)"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in entries:
        kind = f"{c.kind} (reference row)" if c.reference_row else c.kind
        cells = [f"`{c.name}`", c.paper, kind, c.needs, c.extra_nfe, c.parameters]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows)


def cards_text(entries: list[EstimatorCard] | None = None) -> str:
    """The cards as indented text (for `python -m benchmark list --estimators`)."""
    lines = []
    for c in cards() if entries is None else entries:
        lines += [f"{c.name}  [{c.kind}{', reference row' if c.reference_row else ''}]",
                  f"    paper: {c.paper}", f"    needs: {c.needs}",
                  f"    extra NFEs per sample: {c.extra_nfe}", f"    parameters: {c.parameters}"]
    return "\n".join(lines)


def generated_block(text: str, start: str = START, end: str = END) -> str:
    """The generated block between a page's markers (without them)."""
    if start not in text or end not in text:
        raise ValueError(f"the page has no {start} ... {end} block")
    return text.split(start, 1)[1].split(end, 1)[0].strip("\n")


def replace_generated(path: Path, body: str, start: str = START, end: str = END) -> bool:
    """Replace the block between a page's markers with `body`; True when the file changed."""
    text = path.read_text(encoding="utf-8")
    generated_block(text, start, end)  # the markers must be there
    head, rest = text.split(start, 1)
    new = f"{head}{start}\n{body}\n{end}{rest.split(end, 1)[1]}"
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m estimators.cards", description=__doc__.split("\n")[0])
    parser.add_argument("--write-docs", "--write-readme", dest="write", action="store_true",
                        help=f"regenerate the estimator table of {PAGE.parent.name}/{PAGE.name}")
    args = parser.parse_args(argv)
    if args.write:
        changed = replace_generated(PAGE, markdown_table(cards()))
        print(f"{PAGE.parent.name}/{PAGE.name}: table " + ("updated" if changed else "already current"))
    else:
        print(markdown_table(cards()))
    return 0



def parameter_text(cls: type, name: str) -> str:
    param = inspect.signature(cls.__init__).parameters.get(name)
    if param is None and isinstance(getattr(cls, name, None), (bool, int, float, str)):
        return f"{name} = {toml_value(getattr(cls, name))}"  # a common option with a class-level default (negate)
    if param is None or param.default is inspect.Parameter.empty:
        return name
    return f"{name} = {toml_value(param.default)}"


def toml_value(value: object) -> str:
    """A default as a config would write it (true/false, lists in brackets, strings quoted)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return f'"{value}"'
    default = getattr(value, "default", value)  # a typed Field rule carries its default
    return repr(default) if default is not value else repr(value)


if __name__ == "__main__":
    sys.exit(main())
