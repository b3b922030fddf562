"""README.md and the reference in docs/ say only what is true: every command line, Python block, name and link.

For every page of DOC_PAGES (README.md, docs/*.md, pipelines/README.md, data/README.md):
- every `featcache ...` line in a fenced block is parsed by the real CLI (`typer.main.get_command` on
  `featcache.cli:app`, then click's `make_context`): the subcommand exists, every option is one of that command's
  and gets a valid value, every argument is there; the command itself never runs. Inline `featcache ...` spans in
  the prose name a real command and real options of it.
- every ```python block runs, in a fresh copy of a folder of tiny data (`workspace`: the README's `my_videos/`
  tree as real videos, a format-2 `cache.h5`); a block with `<!-- not run: REASON -->` on the line before it is
  compiled instead, and every `featcache.X` name in it must exist.
- the README walk-through ("Your own videos") runs end to end on tiny videos, command by command.
- every `featcache.X` name and `featcache/...` path a page mentions exists, and every relative link and anchor
  resolves; docs/cli.md documents every command and option; docs/architecture.md has a line for every module.

Stand-ins, because nothing can be downloaded here: where a page uses MobileNetV2 with ImageNet weights, the
tests embed with the scratch CNN with random weights at 32 px instead (IMAGENET_STAND_IN, WALKTHROUGH_EMBED_OPTIONS;
MobileNetV2 with random weights would not do: its features carry no information and `embed` refuses them).
"""

from __future__ import annotations

import ast
import importlib
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import typer
import typer.main
from cache_fixtures import ucf101_like_cache
from conftest import write_video
from typer.testing import CliRunner

from featcache.cache import upgrade_cache
from featcache.cli import app

ROOT = Path(__file__).resolve().parent.parent
DOC_PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "pipelines" / "README.md",
    ROOT / "data" / "README.md",
]
README_MAX_BYTES = 12 * 1024  # the README is a newcomer's page; the reference lives in docs/

IMAGENET_STAND_IN = (
    'ExtractorConfig(name="mobilenet_v2", weights="imagenet")',
    'ExtractorConfig(name="scratch_cnn", weights="random", image_size=32)',
)
WALKTHROUGH_EMBED_OPTIONS = ["--extractor", "scratch_cnn", "--weights", "random", "--image-size", "32"]
VIDEOS_PER_CLASS = 6  # the README's tree shows a few videos per class and means more: a split needs some in each subset
# What a page's Python example leaves behind, beside running without an error (the README's: embed, train, evaluate).
FILES_WRITTEN_BY = {"README.md": ("my_videos.h5", "my_model/model.keras", "my_model/evaluation")}
# `featcache.json` is the model folder's metadata file, not a Python name.
FILE_NAMES_LIKE_PYTHON_NAMES = {"featcache.json"}
# click's UsageError (typer 0.29 carries its own copy of click): what the parser raises for a bad command line.
USAGE_ERROR = typer.BadParameter.__base__
CLI = typer.main.get_command(app)
RUNNER = CliRunner()


# Reading the pages


@dataclass(frozen=True)
class CodeBlock:
    page: Path
    line: int  # 1-based line of the opening fence
    language: str
    text: str
    not_run: str | None  # the reason of a `<!-- not run: REASON -->` marker on the line before the fence

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def code_blocks(page: Path) -> list[CodeBlock]:
    """The fenced blocks of a page, dedented to their fence (blocks inside list items are indented)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks, number = [], 0
    while number < len(lines):
        opening = re.match(r"^(\s*)```(\w*)\s*$", lines[number])
        if not opening:
            number += 1
            continue
        indent, language = len(opening.group(1)), opening.group(2)
        end = next(row for row in range(number + 1, len(lines)) if lines[row].strip() == "```")
        text = "\n".join(line[indent:] for line in lines[number + 1 : end]) + "\n"
        previous = lines[number - 1].strip() if number else ""
        marker = re.fullmatch(r"<!-- not run: (.+) -->", previous)
        blocks.append(CodeBlock(page, number + 1, language, text, marker.group(1) if marker else None))
        number = end + 1
    return blocks


def prose(page: Path) -> str:
    """The page without its fenced blocks."""
    return re.sub(
        r"^\s*```\w*\s*\n.*?^\s*```\s*$", "", page.read_text(encoding="utf-8"), flags=re.DOTALL | re.MULTILINE
    )


def inline_code(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", text)


def section(page: Path, heading: str) -> str:
    """The text under `## heading` up to the next heading of that level or higher."""
    text = page.read_text(encoding="utf-8")
    level = heading.split(" ", 1)[0]
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    following = [match.start() for match in re.finditer(rf"^#{{1,{len(level)}}} ", text[start:], flags=re.MULTILINE)]
    return text[start : start + following[0]] if following else text[start:]


ALL_BLOCKS = [block for page in DOC_PAGES for block in code_blocks(page)]
PYTHON_BLOCKS = [block for block in ALL_BLOCKS if block.language == "python"]


# The command lines


def featcache_command_lines(block: CodeBlock) -> list[list[str]]:
    """The argument lists after `featcache` of every command in a non-Python block (`a && b`, `x | y`: each part)."""
    commands = []
    for line in block.text.splitlines():
        if not re.search(r"(^|[\s;&|(])featcache(\s|$)", line):
            continue
        lexer = shlex.shlex(line.strip().removeprefix("$ "), posix=True, punctuation_chars=True)
        lexer.whitespace_split, lexer.commenters = True, "#"
        tokens, segment = list(lexer), []
        for token in [*tokens, ";"]:
            if token in ("&&", "||", ";", "|"):
                arguments = featcache_arguments(segment)
                if arguments is not None:
                    commands.append(arguments)
                segment = []
            else:
                segment.append(token)
    return commands


def featcache_arguments(tokens: list[str]) -> list[str] | None:
    """tokens of one shell command -> the arguments of `featcache` (also `python -m featcache`, `time featcache`)."""
    while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", tokens[0]):  # KERAS_BACKEND=jax featcache ...
        tokens = tokens[1:]
    if tokens and tokens[0] in ("time", "/usr/bin/time"):
        tokens = tokens[1:]
        while tokens and tokens[0].startswith("-"):
            tokens = tokens[1:]
    if tokens[:1] == ["featcache"]:
        return tokens[1:]
    if len(tokens) >= 3 and tokens[0] in ("python", "python3") and tokens[1:3] == ["-m", "featcache"]:
        return tokens[3:]
    return None


def parse_with_the_cli(arguments: list[str]) -> None:
    """Parse a command line as `featcache` would, without running it; raises USAGE_ERROR or AssertionError."""
    command, names = CLI, ["featcache"]
    while hasattr(command, "commands"):  # a group: its own options, then a subcommand
        context = command.context_class(command, info_name=" ".join(names))
        _, rest, _ = command.make_parser(context).parse_args(list(arguments))
        if not rest:
            return  # `featcache --version`
        subcommand = command.get_command(context, rest[0])
        assert subcommand is not None, (
            f"{' '.join(names)} has no command {rest[0]!r}; it has {', '.join(command.commands)}"
        )
        command, names, arguments = subcommand, [*names, rest[0]], rest[1:]
    # click parses, converts and checks every option and argument here; the command's function is not called.
    command.make_context(" ".join(names), list(arguments))


COMMAND_LINES = [
    (block, arguments)
    for block in ALL_BLOCKS
    if block.language != "python"
    for arguments in featcache_command_lines(block)
]


def test_the_pages_show_command_lines() -> None:
    assert len(COMMAND_LINES) > 40, "the command-line scan found almost nothing: has the fence syntax changed?"


@pytest.mark.parametrize(
    ("block", "arguments"),
    COMMAND_LINES,
    ids=[f"{block.where} {' '.join(arguments)[:60]}" for block, arguments in COMMAND_LINES],
)
def test_every_command_line_parses_with_the_cli(block: CodeBlock, arguments: list[str]) -> None:
    try:
        parse_with_the_cli(arguments)
    except USAGE_ERROR as error:
        pytest.fail(f"{block.where}: `featcache {' '.join(arguments)}`: {error.format_message()}")


def test_the_parser_check_catches_bad_command_lines() -> None:
    """The check above can fail: an unknown command, option or choice, a missing argument or value."""
    bad_command_lines = [
        ["embed", "videos"],  # no --out
        ["embed", "videos", "--out", "c.h5", "--extractr", "x"],
        ["train", "c.h5", "--out", "m", "--head", "rnn"],
        ["export", "c.h5"],  # no OUT
        ["predict", "model", "a.avi", "--top-k"],  # no value
        ["weights", "fetch", "mobilenet_v2"],
    ]
    for arguments in bad_command_lines:
        with pytest.raises(USAGE_ERROR):
            parse_with_the_cli(arguments)
    with pytest.raises(AssertionError, match="has no command 'embedd'"):
        parse_with_the_cli(["embedd", "videos", "--out", "c.h5"])


def inline_command_problems(span: str) -> list[str]:
    """What is wrong with an inline `featcache ...` span: an unknown command, or an option that command lacks.

    Inline spans may carry placeholders (`featcache predict MODEL_DIR VIDEO...`, `--subset default|test|all`), so
    only names are checked: the words up to the first option or placeholder, and every `--option`.
    """
    tokens = span.split()[1:]
    command, names = CLI, ["featcache"]
    while hasattr(command, "commands") and tokens and not tokens[0].startswith("-"):
        if tokens[0].isupper():  # `featcache COMMAND --help`
            return []
        if tokens[0] not in command.commands:
            return [f"`{span}`: {' '.join(names)} has no command {tokens[0]!r}"]
        command, names, tokens = command.commands[tokens[0]], [*names, tokens[0]], tokens[1:]
    known = {option for parameter in command.params for option in [*parameter.opts, *parameter.secondary_opts]} | {
        "--help"
    }
    options = [token.split("=", 1)[0] for token in tokens if re.fullmatch(r"--?[a-z][\w-]*(=.*)?", token)]
    return [f"`{span}`: {' '.join(names)} has no option {option}" for option in options if option not in known]


def test_inline_command_spans_name_real_commands_and_options() -> None:
    spans = [(page, span) for page in DOC_PAGES for span in inline_code(prose(page)) if span.startswith("featcache ")]
    assert len(spans) > 30
    problems = [
        f"{page.relative_to(ROOT)}: {problem}" for page, span in spans for problem in inline_command_problems(span)
    ]
    assert not problems, "\n".join(problems)
    assert inline_command_problems("featcache train CACHE --epoch 3") == [
        "`featcache train CACHE --epoch 3`: featcache train has no option --epoch"
    ]


# The Python blocks


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny data under the names the pages use:
    `my_videos/` (the README tree, real videos) and a format-2 `cache.h5`."""
    folder = tmp_path_factory.mktemp("workspace")
    write_walkthrough_videos(folder)
    ucf101_like_cache(folder / "cache.h5", num_classes=2, num_groups=10, clips_per_group=1, num_frames=10)
    upgrade_cache(folder / "cache.h5")
    return folder


def walkthrough_tree() -> list[str]:
    """The video paths of the README's folder-layout block ("Your own videos")."""
    block = re.search(r"```\n(.*?)```", section(ROOT / "README.md", "## Your own videos"), flags=re.DOTALL).group(1)
    return block.split()


def write_walkthrough_videos(folder: Path) -> list[Path]:
    """The README tree's videos, and more in each class folder up to VIDEOS_PER_CLASS: 12 frames of 32x32,
    a colour per class."""
    listed = [folder / path for path in walkthrough_tree()]
    class_folders = sorted({path.parent for path in listed})
    rng = np.random.default_rng(0)
    written = []
    for class_index, class_folder in enumerate(class_folders):
        shown = [path for path in listed if path.parent == class_folder]
        extra = [
            class_folder / f"more_{number:02d}{shown[0].suffix}" for number in range(VIDEOS_PER_CLASS - len(shown))
        ]
        for path in shown + extra:
            frames = rng.integers(0, 128, size=(12, 32, 32, 3), dtype=np.uint8)
            frames[..., class_index % 3] = 255
            written.append(write_video(path, frames))
    return written


def is_custom_training_loop_example(block: CodeBlock) -> bool:
    """The Keras and PyTorch examples, run with stronger checks by test_the_custom_training_loop_examples_run."""
    return block.page.name == "training-loop.md" and block.text.startswith(
        ("import featcache, keras\n", "import featcache, torch\n")
    )


def featcache_names(code: str) -> list[str]:
    """Every dotted name rooted at `featcache` in the code (featcache.embed, featcache.cache.CacheWriter.commit)."""
    names = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Attribute):
            parts, inner = [], node
            while isinstance(inner, ast.Attribute):
                parts.insert(0, inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name) and inner.id == "featcache":
                names.append(".".join(["featcache", *parts]))
    return names


def resolve(dotted_name: str) -> object:
    """The object a dotted name names, importing modules on the way;
    AttributeError or ImportError when there is none."""
    parts = dotted_name.split(".")
    value = importlib.import_module(parts[0])
    for position, part in enumerate(parts[1:], start=2):
        module_name = ".".join(parts[:position])
        try:
            value = getattr(value, part)
        except AttributeError:
            value = importlib.import_module(module_name)
    return value


def run_block(code: str, where: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.chdir(folder)
    namespace: dict = {"__name__": "__doc_example__"}
    exec(compile(code, where, "exec"), namespace)
    return namespace


GENERIC_BLOCKS = [block for block in PYTHON_BLOCKS if not is_custom_training_loop_example(block)]


@pytest.mark.parametrize("block", GENERIC_BLOCKS, ids=[block.where for block in GENERIC_BLOCKS])
def test_every_python_block_runs(
    block: CodeBlock, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if block.not_run:
        compile(block.text, block.where, "exec")
        for name in featcache_names(block.text):
            resolve(name)
        return
    code = block.text.replace(*IMAGENET_STAND_IN)
    assert "imagenet" not in code, (
        f"{block.where} needs ImageNet weights: use the pattern of IMAGENET_STAND_IN or mark it <!-- not run: ... -->"
    )
    folder = tmp_path / "work"
    shutil.copytree(workspace, folder)
    run_block(code, block.where, folder, monkeypatch)
    for written in FILES_WRITTEN_BY.get(block.page.relative_to(ROOT).as_posix(), ()):
        assert (folder / written).exists(), f"{block.where} ran but wrote no {written}"


def test_the_custom_training_loop_examples_run(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/training-loop.md's Keras and PyTorch examples, as printed (1 epoch instead of 10), on the tiny cache.h5."""
    keras_example, torch_example = [block for block in PYTHON_BLOCKS if is_custom_training_loop_example(block)]
    shutil.copytree(workspace, tmp_path / "work")
    namespace = run_block(
        keras_example.text.replace("epochs=10", "epochs=1, verbose=0"),
        keras_example.where,
        tmp_path / "work",
        monkeypatch,
    )
    assert len(namespace["model"].history.history["val_accuracy"]) == 1
    namespace = run_block(
        torch_example.text.replace("range(10)", "range(1)"), torch_example.where, tmp_path / "work", monkeypatch
    )
    assert np.isfinite(namespace["loss"].item())


def test_not_run_blocks_say_why_and_some_blocks_run() -> None:
    assert all(block.not_run.strip() for block in PYTHON_BLOCKS if block.not_run is not None)
    assert sum(block.not_run is None for block in PYTHON_BLOCKS) >= 6


# The walk-through


def test_the_readme_walkthrough_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The "Your own videos" commands, in order, on the tree's videos;
    embed uses WALKTHROUGH_EMBED_OPTIONS (no ImageNet here)."""
    commands_block = re.findall(r"```\n(.*?)```", section(ROOT / "README.md", "## Your own videos"), flags=re.DOTALL)[1]
    commands = featcache_command_lines(CodeBlock(ROOT / "README.md", 0, "", commands_block, None))
    assert [arguments[0] for arguments in commands] == ["embed", "info", "train", "evaluate", "predict"]
    write_walkthrough_videos(tmp_path)
    monkeypatch.chdir(tmp_path)
    outputs = {}
    for arguments in commands:
        if arguments[0] == "embed":
            assert not {"--extractor", "--weights"} & set(arguments), (
                "the walk-through's embed uses the defaults; change the stand-in"
            )
            arguments = [*arguments, *WALKTHROUGH_EMBED_OPTIONS]
        if arguments[0] == "predict":
            for video in arguments[2:]:
                write_video(tmp_path / video, np.full((12, 32, 32, 3), 200, dtype=np.uint8))
        result = RUNNER.invoke(app, arguments)
        assert result.exit_code == 0, f"featcache {' '.join(arguments)}:\n{result.output}"
        outputs[arguments[0]] = result.output
    class_names = sorted({Path(path).parent.name for path in walkthrough_tree()})
    assert f"{len(class_names) * VIDEOS_PER_CLASS} videos, {len(class_names)} classes" in outputs["info"]
    assert (tmp_path / "my_model" / "model.keras").is_file() and (tmp_path / "my_model" / "split.csv").is_file()
    assert "held-out (test) videos" in outputs["evaluate"] and "Accuracy:" in outputs["evaluate"]
    assert all(name in outputs["predict"] for name in class_names)  # the top 3 of 3 classes


# Names, paths, links


def test_every_featcache_name_exists() -> None:
    mentions = {
        (page, name)
        for page in DOC_PAGES
        for name in re.findall(r"\bfeatcache(?:\.[A-Za-z_]\w*)+", page.read_text(encoding="utf-8"))
    }
    problems = []
    for page, name in sorted(mentions):
        if name in FILE_NAMES_LIKE_PYTHON_NAMES:
            continue
        try:
            resolve(name)
        except (AttributeError, ImportError) as error:
            problems.append(f"{page.relative_to(ROOT)}: {name}: {error}")
    assert not problems, "\n".join(problems)


def test_every_package_path_exists() -> None:
    paths = {
        (page, span)
        for page in DOC_PAGES
        for span in inline_code(page.read_text(encoding="utf-8"))
        if re.fullmatch(r"featcache/[\w./-]*", span)
    }
    assert len(paths) > 20
    missing = [f"{page.relative_to(ROOT)}: {span}" for page, span in sorted(paths) if not (ROOT / span).exists()]
    assert not missing, "\n".join(missing)


def heading_anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to hyphens, -1, -2 for repeats."""
    anchors: set[str] = set()
    for heading in re.findall(r"^#+ (.+)$", prose(page), flags=re.MULTILINE):
        anchor = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        repeat = 0
        while (anchor if repeat == 0 else f"{anchor}-{repeat}") in anchors:
            repeat += 1
        anchors.add(anchor if repeat == 0 else f"{anchor}-{repeat}")
    return anchors


def test_every_relative_link_and_anchor_resolves() -> None:
    problems, checked = [], 0
    for page in DOC_PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", prose(page)):
            if re.match(r"[a-z]+:", target):
                continue  # https://, mailto:
            path_part, _, anchor = target.partition("#")
            path = (page.parent / path_part).resolve() if path_part else page
            checked += 1
            if not path.exists():
                problems.append(f"{page.relative_to(ROOT)}: link to {target}: no such file")
            elif anchor and path.suffix == ".md" and anchor not in heading_anchors(path):
                problems.append(f"{page.relative_to(ROOT)}: link to {target}: {path.name} has no heading #{anchor}")
    assert checked > 50
    assert not problems, "\n".join(problems)


# The reference is complete


def leaf_commands(command=CLI, names=("featcache",)):
    if hasattr(command, "commands"):
        for name, subcommand in command.commands.items():
            yield from leaf_commands(subcommand, (*names, name))
    else:
        yield " ".join(names), command


def test_cli_reference_documents_every_command_and_option() -> None:
    cli_page = ROOT / "docs" / "cli.md"
    shared = section(cli_page, "## What every command shares")
    problems = []
    for name, command in leaf_commands():
        heading = f"### `{name}`"
        if f"\n{heading}\n" not in cli_page.read_text(encoding="utf-8"):
            problems.append(f"no section {heading}")
            continue
        documented = section(cli_page, heading) + shared
        for parameter in command.params:
            if parameter.param_type_name != "option":
                continue
            option = max(parameter.opts, key=len)
            if not re.search(re.escape(option) + r"(?![\w-])", documented):
                problems.append(f"{heading} does not mention {option}")
    assert not problems, "docs/cli.md:\n" + "\n".join(problems)


def test_architecture_lists_every_module() -> None:
    """docs/architecture.md has a line for every module (a package's __init__.py may be left out)
    and none that is gone."""
    page = ROOT / "docs" / "architecture.md"
    listed = {
        heading: set(re.findall(r"^- `([\w.]+(?:\.py|/))`", section(page, f"### `{heading}`"), flags=re.MULTILINE))
        for heading in re.findall(
            r"^### `(featcache/(?:\w+/)?)`$", page.read_text(encoding="utf-8"), flags=re.MULTILINE
        )
    }
    package_root = ROOT / "featcache"
    packages = {"featcache/": package_root} | {
        f"featcache/{folder.name}/": folder
        for folder in sorted(package_root.iterdir())
        if (folder / "__init__.py").is_file()
    }
    assert set(listed) == set(packages), f"package sections {sorted(listed)} vs packages {sorted(packages)}"
    for heading, folder in packages.items():
        modules = {path.name for path in folder.glob("*.py")}
        if heading == "featcache/":
            required = modules | {
                f"{path.name}/"
                for path in folder.iterdir()
                if path.is_dir()
                and path.name not in packages
                and path.name != "__pycache__"
                and not (path / "__init__.py").exists()
            }
        else:
            required = modules - {"__init__.py"}
        assert required <= listed[heading], (
            f"docs/architecture.md, {heading}: no line for {sorted(required - listed[heading])}"
        )
        assert listed[heading] <= required | modules, (
            f"docs/architecture.md, {heading}: lines for modules that are gone: "
            f"{sorted(listed[heading] - required - modules)}"
        )


# The README


def readme_commands() -> list[str]:
    """The one-line fenced code blocks before the first section heading."""
    head = (ROOT / "README.md").read_text().split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```\n(.*?)```", head, flags=re.DOTALL)]


def test_readme_opens_with_two_commands_demo_then_tests() -> None:
    commands = readme_commands()
    assert len(commands) == 2 and all("\n" not in command for command in commands)
    assert commands[0].endswith("featcache demo")
    assert commands[1].endswith("python3 -m pytest")


def test_ci_runs_the_readme_test_command() -> None:
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert readme_commands()[1] in ci_lines


def test_readme_stays_a_short_page() -> None:
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_MAX_BYTES, (
        f"README.md is {size} bytes (at most {README_MAX_BYTES}): move reference material to docs/"
    )
