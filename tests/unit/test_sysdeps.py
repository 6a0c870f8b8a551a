"""`make sysdeps` installs every system program the tests, the make targets and the scripts run.

A program that was once installed by hand on one machine makes CI green there and red on the
next fresh one (catatonit, which `podman kube play` runs for its pause container, was such a
program). So the programs are found in the sources themselves: the first word of every shell
command in scripts/*.sh and in the Makefile's recipes, and the argv[0] and `shutil.which` names
in the Python of tests/, scripts/, harness/ and services/. Each must be a shell builtin, a
program of the project's own environment (.venv/bin) or of the project itself, or be declared in
PROGRAMS below with the Debian package that provides it; that package must be in SYSDEPS or in
every Debian system (priority required). Programs that other programs run for us (podman's
helpers) are declared too, with the reason.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]

# program -> the Debian package that provides it
PROGRAMS = {
    # run by the project's own code
    "podman": "podman", "docker-compose": "docker-compose", "chromium": "chromium", "groovy": "groovy",
    "debootstrap": "debootstrap", "curl": "curl", "git": "git", "java": "openjdk-17-jre-headless",
    "dpkg-deb": "dpkg", "dpkg-query": "dpkg", "apt-get": "apt", "chroot": "coreutils", "mount": "mount", "umount": "mount",
    # run by podman, not by us: the OCI runtime, the pause container's init (`kube play`), rootful
    # networking and DNS between containers, and the storage driver's fallback
    "runc": "runc", "catatonit": "catatonit", "netavark": "netavark", "aardvark-dns": "aardvark-dns",
    "fuse-overlayfs": "fuse-overlayfs",
}
# run only where present, each behind a check that falls back to a declared program
OPTIONAL = {
    "docker": "images and compose use it only when a Docker daemon answers (`docker info`), else podman",
    "kubectl": "Kaniko builds only when kubectl can create Jobs in a cluster (IMAGE_BUILDER=auto/kaniko)",
}
# in every Debian system (priority required) or the base of this machine kind, never installed by sysdeps
BASE = {"coreutils", "bash", "sed", "grep", "mawk", "findutils", "gzip", "tar", "util-linux", "dpkg", "apt",
        "procps", "mount", "debianutils", "diffutils", "hostname", "login", "passwd"}
# provided by the machine's Python (the venv is made from it) or by the project itself
PROJECT = {"python", "python3", "python3.11", "pip", "loopline", "make"}
SHELL_WORDS = {
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac", "in", "function",
    "echo", "printf", "cd", "test", "[", "[[", "]]", "true", "false", "exit", "return", "set", "export", "local",
    "read", "shift", "trap", "wait", "kill", "exec", "eval", "source", ".", "command", "type", "unset", "break",
    "continue", "declare", "readonly", "let", "ulimit", "umask", "pwd", "time", "sleep", "{", "}", "!", ":",
}
# everyday coreutils and friends (priority required): present on every Debian system
BASE_PROGRAMS = {
    "cat", "cp", "mv", "rm", "mkdir", "rmdir", "ln", "ls", "touch", "chmod", "chown", "id", "date", "head", "tail",
    "cut", "sort", "uniq", "wc", "tr", "tee", "basename", "dirname", "mktemp", "env", "timeout", "sha256sum", "stat",
    "du", "df", "readlink", "realpath", "seq", "yes", "nproc", "uname", "whoami", "awk", "sed", "grep", "find",
    "xargs", "tar", "gzip", "cmp", "diff", "ps", "dpkg", "bash", "sh", "install", "sync", "printenv", "expr",
    "comm", "paste", "nohup", "setsid", "flock", "od", "base64", "hostname", "getent", "sleep",
}

SHELL_SEPARATORS = re.compile(r"\$\(|;|&&|\|\||\||\(|`|\bthen\b|\bdo\b|\belse\b|\bif\b|\bwhile\b|\buntil\b|\btime\b|!")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
WORD = re.compile(r"^[a-z][a-z0-9._+-]*$")
PY_ARGV0 = re.compile(r"""(?:run|Popen|check_output|check_call|call|sh)\(\s*\[\s*["']([a-z][\w.+-]*)["']""")
PY_WHICH = re.compile(r"""which\(\s*["']([a-z][\w.+-]*)["']\s*\)""")


def _logical_lines(text: str) -> list[str]:
    return text.replace("\\\n", " ").splitlines()


def shell_commands(text: str) -> set[str]:
    """The first word of every simple command (roughly: enough for the project's own scripts)."""
    functions = set(re.findall(r"^\s*([A-Za-z_][\w-]*)\s*\(\)\s*\{", text, re.M))
    found: set[str] = set()
    heredoc_end = None
    for line in _logical_lines(text):
        if heredoc_end:
            if line.strip() == heredoc_end:
                heredoc_end = None
            continue
        marker = re.search(r"<<-?\s*'?\"?(\w+)'?\"?", line)
        line = re.sub(r"(^|\s)#.*$", "", line)
        line = re.sub(r"'[^']*'", "''", line)  # quoted strings are data, not commands
        line = re.sub(r'"[^"$]*"', '""', line)
        for segment in SHELL_SEPARATORS.split(line.replace(")", " ")):
            words = [w for w in segment.strip().split() if not ASSIGNMENT.match(w)]
            while words and words[0] in ("sudo", "nohup", "setsid", "exec", "command", "env", "timeout"):
                words = words[1:]
                while words and (words[0].startswith("-") or words[0][:1].isdigit()):
                    words = words[1:]
            if words:
                word = words[0].lstrip("@-+")
                if WORD.match(word) and word not in functions:
                    found.add(word)
        if marker:
            heredoc_end = marker.group(1)
    return found


def make_recipe_commands() -> set[str]:
    found: set[str] = set()
    for path in [REPO / "Makefile", *sorted((REPO / "mk").glob("*.mk"))]:
        recipes = "\n".join(line[1:] for line in path.read_text().splitlines() if line.startswith("\t"))
        recipes = recipes.replace("$$", "$").replace("$(MAKE)", "make").replace("$(shell ", "$(")
        # make's functions are not commands: $(if ..., $(filter ..., $(abspath ...
        recipes = re.sub(r"\$\((?:if|filter|filter-out|abspath|patsubst|addsuffix|wildcard|dir|notdir|firstword|subst|strip|"
                         r"findstring|basename|or|and) ", "$(MAKEFUNCTION ", recipes)
        # $(BIN)/x, $(LOOPLINE), $(ENGINE)... are the project's own environment and scripts
        recipes = re.sub(r"\$\([A-Z_]+\)/?[\w.-]*", "PROJECT_TOOL", recipes)
        found |= shell_commands(recipes)
    return found


def script_commands() -> set[str]:
    found: set[str] = set()
    for path in sorted((REPO / "scripts").glob("*.sh")):
        found |= shell_commands(path.read_text())
    return found


def python_commands() -> set[str]:
    found: set[str] = set()
    for folder in ("tests", "scripts", "harness", "services"):
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text()
            found |= set(PY_ARGV0.findall(text)) | set(PY_WHICH.findall(text))
    return found


def sysdeps() -> set[str]:
    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    return set(re.search(r"^SYSDEPS := (.*)$", text, re.M).group(1).split())


def venv_programs() -> set[str]:
    bin_dir = REPO / ".venv" / "bin"
    return {p.name for p in bin_dir.iterdir()} if bin_dir.is_dir() else set()


def undeclared(commands: set[str]) -> set[str]:
    """Words in command position that name a program on this machine and are declared nowhere.

    A word that is no program here (a case label, a word in a message) is not a command; a
    program installed by hand on this machine is, and is caught.
    """
    own = {p.stem for p in (REPO / "scripts").iterdir()} | {p.name for p in (REPO / "scripts").iterdir()}
    known = SHELL_WORDS | BASE_PROGRAMS | PROJECT | set(PROGRAMS) | set(OPTIONAL) | venv_programs() | own
    return {c for c in commands if c not in known and shutil.which(c)}


def test_the_scanner_sees_commands_in_each_kind_of_source() -> None:
    """The scan must be able to fail: it finds the programs the sources are known to run."""
    assert {"debootstrap", "chroot", "podman"} <= script_commands()
    assert "docker-compose" in make_recipe_commands()
    assert {"curl", "make"} <= python_commands()
    assert shell_commands('x=$(foo --a | bar) && FOO=1 baz "qux quux" # corge\n') == {"foo", "bar", "baz"}


def test_a_hand_installed_program_is_caught(monkeypatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}" if name == "jq" else None)
    assert undeclared(shell_commands("curl -s http://x | jq .a\n")) == {"jq"}


def test_every_program_the_sources_run_is_declared() -> None:
    missing = undeclared(make_recipe_commands() | script_commands() | python_commands())
    assert not missing, (f"programs run by the Makefile, scripts or tests with no declared provider: {sorted(missing)}; "
                         "add each to PROGRAMS here with its Debian package, and the package to SYSDEPS in the Makefile")


def test_every_declared_program_comes_from_sysdeps_or_the_base_system() -> None:
    packages = sysdeps()
    outside = {prog: pkg for prog, pkg in PROGRAMS.items() if pkg not in packages and pkg not in BASE}
    assert not outside, f"`make sysdeps` does not install these programs' packages: {outside}"


def test_catatonit_is_in_sysdeps_for_podman_kube_play() -> None:
    assert {"catatonit", "podman", "runc"} <= sysdeps()


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="not a Debian system")
@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_declared_package_really_provides_the_program(program: str) -> None:
    """Where the program is installed (after `make sysdeps`), Debian agrees on its package."""
    path = shutil.which(program) or next((str(p) for p in (Path("/usr/libexec/podman") / program,
                                                            Path("/usr/lib/podman") / program) if p.exists()), None)
    package = PROGRAMS[program]
    installed = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    if "install ok installed" not in installed.stdout:
        pytest.fail(f"package {package} (for {program}) is not installed: run `make sysdeps`")
    assert path, f"{program} not found although {package} is installed"
    # on merged-/usr systems dpkg may know /bin/x for /usr/bin/x, or the symlink's target
    names = {path, str(Path(path).resolve())}
    names |= {n.replace("/usr/bin/", "/bin/").replace("/usr/sbin/", "/sbin/") for n in names}
    owners: set[str] = set()
    for name in sorted(names):
        owner = subprocess.run(["dpkg", "-S", name], capture_output=True, text=True)
        owners |= {line.split(":")[0] for line in owner.stdout.splitlines() if ":" in line}
    assert package in owners or any(o.startswith(package) for o in owners), \
        f"{program} at {path} comes from {owners or 'no package'}, not {package}"
