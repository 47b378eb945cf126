"""The tenant discovery answer kept between runs, against the sandbox's Microsoft 365.

The check reaches the identity provider through a CONNECT proxy that sees the requests in
its tunnels (bench/sign_in_relay.py), so the tests count what the sign-in host was asked.
A cache that cannot be used must give the result a run without it gives, and say why at -v.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from checkrun import PLUGIN, CheckRun, run_check

from check_mailgw.sandbox.check_commands import oauth_args
from check_mailgw.sandbox.m365.cloud import M365Sandbox
from check_mailgw.sandbox.m365.tenant import SANDBOX_CLIENT_SECRET
from check_mailgw.sandbox.plumbing.ca import SandboxCA

sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))
from sign_in_relay import SignInRelay

OK, CRITICAL, UNKNOWN = 0, 2, 3
DISCOVERY = "/v2.0/.well-known/openid-configuration"
GRAPH_PREFIX = "/v1.0/"
NOBODY = 65534


@pytest.fixture
def relay(sandbox_ca: SandboxCA) -> Iterator[SignInRelay]:
    with SignInRelay(sandbox_ca) as running:
        yield running


class Checks:
    """Runs of one mode against one sandbox, through the relay, with a cache directory."""

    def __init__(self, sandbox: M365Sandbox, relay: SignInRelay, mode: str, ca_file: Path,
                 secret_file: Path, cache_home: Path) -> None:
        self.sandbox, self.relay = sandbox, relay
        self.args = [*oauth_args(sandbox, mode, ca_file, secret_file), "--proxy", relay.url]
        self.env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
        self.cache = cache_home / "check_mailgw"

    def run(self, *extra: object, env: dict[str, str] | None = None) -> tuple[CheckRun, list]:
        """A run, and what it asked the identity provider (Graph's requests left out)."""
        self.relay.clear()
        result = run_check(*self.args, *extra, env=env or self.env)
        asked = [request for request in self.relay.requests()
                 if not request[1].startswith(GRAPH_PREFIX)]
        return result, asked

    def entries(self) -> list[Path]:
        return sorted(self.cache.glob("*")) if self.cache.is_dir() else []


@pytest.fixture
def checks(m365, relay, ca_file, client_secret_file,
           tmp_path) -> Callable[..., Checks]:
    def make(mode: str = "graph", scenario: str = "ok") -> Checks:
        return Checks(m365(scenario), relay, mode, ca_file, client_secret_file,
                      tmp_path / "cache-home")
    return make


def steady(result: CheckRun) -> tuple[int, str, list[str]]:
    """What must not change with the cache: exit code, first line without its run time,
    perfdata labels."""
    return (result.exit_code, re.sub(r" in \d+(\.\d+)?s$", "", result.first_line),
            sorted(result.perfdata))


def discoveries(asked: list[tuple[str, str]]) -> int:
    return sum(1 for method, path in asked if method == "GET" and path.endswith(DISCOVERY))


def cache_note(result: CheckRun) -> str:
    token_line = next(line for line in result.stdout.splitlines() if line.startswith("token"))
    found = re.search(r"discovery_cache=(.*?)(?:; \w+=|$)", token_line)
    return found.group(1) if found else ""


# --- the saving --------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["graph", "o365-smtp"])
def test_the_second_run_asks_the_sign_in_host_less_with_the_same_result(checks, mode) -> None:
    runs = checks(mode)
    first, first_asked = runs.run()
    second, second_asked = runs.run()
    assert first.exit_code == OK, first.stdout
    assert steady(second) == steady(first)
    # Each lane's discovery (o365-smtp asks a Graph token for the expiry lookup beside the
    # chain's) came from the cache; every token request still went to the sign-in host.
    assert discoveries(first_asked) >= 1
    assert discoveries(second_asked) == 0
    assert len(second_asked) == len(first_asked) - discoveries(first_asked)
    assert [r for r in second_asked if r[0] == "POST"] == [r for r in first_asked
                                                              if r[0] == "POST"]
    assert runs.sandbox.token_requests == len([r for r in first_asked + second_asked
                                               if r[0] == "POST"])


def test_the_graph_check_saves_exactly_one_request(checks) -> None:
    runs = checks("graph")
    _, first_asked = runs.run("--secret-expires", "2099-01-01")
    _, second_asked = runs.run("--secret-expires", "2099-01-01")
    assert len(first_asked) == 2 and len(second_asked) == 1, (first_asked, second_asked)


def test_the_cache_holds_the_discovery_document_only_in_private_files(checks) -> None:
    runs = checks("o365-smtp")
    result, _ = runs.run("-vvv")
    entries = runs.entries()
    assert len(entries) == 1, entries
    assert runs.cache.stat().st_mode & 0o777 == 0o700
    assert entries[0].stat().st_mode & 0o777 == 0o600
    text = entries[0].read_text()
    entry = json.loads(text)
    assert set(entry) == {"format", "url", "trust", "fetched", "document"}
    assert entry["url"] == (f"{runs.sandbox.authority}/{runs.sandbox.tenant_id}"
                            f"{DISCOVERY}")
    assert entry["document"]["token_endpoint"].startswith(runs.sandbox.authority + "/")
    # No token (a JWS starts with a base64url '{"'), no secret, no token endpoint answer.
    assert "eyJ" not in text and SANDBOX_CLIENT_SECRET not in text
    assert "access_token" not in text and "expires_in" not in text
    assert f"kept for 24 hours in {entries[0]}" in result.stdout


def test_the_dialogue_says_where_the_answer_came_from(checks) -> None:
    runs = checks("graph")
    runs.run()
    second, _ = runs.run("-vv")
    assert re.search(r"GET https://127\.0\.0\.1:\d+/[0-9a-f-]+/v2\.0/\.well-known/"
                     r"openid-configuration -> 200 kept \d+min ago in .*discovery-[0-9a-f]+"
                     r"\.json", second.stdout), second.stdout


def test_a_cached_answer_is_only_for_its_own_authority_and_trust(
        checks, sandbox_ca, tmp_path) -> None:
    runs = checks("graph")
    runs.run()
    other_ca = tmp_path / "other-ca.pem"
    shutil.copy(runs.args[runs.args.index("--ca-file") + 1], other_ca)
    with other_ca.open("a") as file:
        file.write("\n")  # the same certificates, another file's content
    args = list(runs.args)
    args[args.index("--ca-file") + 1] = str(other_ca)
    runs.relay.clear()
    result = run_check(*args, env=runs.env)
    assert result.exit_code == OK, result.stdout
    assert discoveries(runs.relay.requests()) == 1
    # Another trust: its own discovery, its own entry.
    assert len(runs.entries()) == 2


def test_parallel_runs_leave_one_whole_entry(checks) -> None:
    runs = checks("graph")
    results: list[CheckRun] = []

    def one() -> None:
        results.append(run_check(*runs.args, env=runs.env))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [result.exit_code for result in results] == [OK] * 4, [r.stdout for r in results]
    entries = runs.entries()
    assert [entry.suffix for entry in entries] == [".json"], entries  # no temporary left
    json.loads(entries[0].read_text())
    _, asked = runs.run()
    assert discoveries(asked) == 0


def test_insecure_runs_keep_nothing(checks) -> None:
    runs = checks("graph")
    args = list(runs.args)
    ca_at = args.index("--ca-file")
    del args[ca_at:ca_at + 2]
    result = run_check(*args, "--insecure", env=runs.env)
    assert result.exit_code == OK, result.stdout
    assert runs.entries() == []


def test_without_xdg_cache_home_the_cache_is_under_home(checks, tmp_path) -> None:
    runs = checks("graph")
    env = {key: value for key, value in runs.env.items() if key != "XDG_CACHE_HOME"}
    env["HOME"] = str(tmp_path / "home")
    result, _ = runs.run(env=env)
    assert result.exit_code == OK, result.stdout
    assert len(list((tmp_path / "home" / ".cache" / "check_mailgw").glob("discovery-*"))) == 1


# --- --discovery-cache -----------------------------------------------------------------------

def test_an_empty_discovery_cache_option_keeps_nothing_and_says_so(checks) -> None:
    runs = checks("graph")
    for _ in range(2):
        result, asked = runs.run("--discovery-cache", "", "-v")
        assert result.exit_code == OK, result.stdout
        assert discoveries(asked) == 1  # asked every time
    assert runs.entries() == []
    assert cache_note(result) == 'off (--discovery-cache "")'


def test_the_discovery_cache_option_names_the_directory(checks, tmp_path) -> None:
    runs = checks("o365-smtp")
    chosen = tmp_path / "var" / "cache" / "mailgw"
    first, _ = runs.run("--discovery-cache", chosen, "-v")
    second, asked = runs.run("--discovery-cache", chosen, "-v")
    assert steady(second) == steady(first) and first.exit_code == OK, first.stdout
    assert discoveries(asked) == 0
    assert [entry.name[:10] for entry in chosen.iterdir()] == ["discovery-"]
    assert chosen.stat().st_mode & 0o777 == 0o700
    assert runs.entries() == []  # nothing in the user's own cache
    assert cache_note(second) == ""


def test_a_discovery_cache_that_is_a_file_leaves_the_check_as_it_is(checks, tmp_path) -> None:
    """The cache never changes a result: a file where the directory should be is said at -v,
    and the check goes on (a gateway check that went UNKNOWN over a saving of one request
    would hide the gateway's own state)."""
    runs = checks("graph")
    reference, _ = runs.run("--discovery-cache", "", "-v")
    occupied = tmp_path / "a-file"
    occupied.write_text("not a directory\n")
    result, asked = runs.run("--discovery-cache", occupied, "-v")
    assert steady(result) == steady(reference), result.stdout
    assert discoveries(asked) == 1
    assert cache_note(result) == f"not used: {occupied} is not a directory"
    assert occupied.read_text() == "not a directory\n"
    assert not result.stderr


def test_the_discovery_cache_from_a_config_profile(checks, tmp_path) -> None:
    runs = checks("graph")
    config = tmp_path / "gateways.toml"
    chosen = tmp_path / "profile-cache"
    config.write_text(f'[defaults]\ndiscovery_cache = ""\n[profiles.kept]\n'
                      f'discovery_cache = "{chosen}"\n[profiles.none]\n')
    kept, _ = runs.run("--config", config, "--profile", "kept")
    assert kept.exit_code == OK, kept.stdout
    assert len(list(chosen.glob("discovery-*"))) == 1
    off, asked = runs.run("--config", config, "--profile", "none", "-v")
    assert discoveries(asked) == 1 and cache_note(off) == 'off (--discovery-cache "")'
    # The command line overrides the profile.
    _, asked = runs.run("--config", config, "--profile", "none", "--discovery-cache", chosen)
    assert discoveries(asked) == 0
    assert runs.entries() == []


@pytest.mark.parametrize(("profile_line", "option", "words"), [
    (None, "relative/cache", "--discovery-cache 'relative/cache': expected an absolute path"),
    ("discovery_cache = false", None, "--discovery-cache False: expected a directory's path"),
    ("discovery_cache = 7", None, "--discovery-cache 7: expected a directory's path"),
])
def test_a_discovery_cache_that_is_no_path_is_unknown(checks, tmp_path, profile_line, option,
                                                       words) -> None:
    runs = checks("graph")
    extra: list[object] = ["--discovery-cache", option] if option is not None else []
    if profile_line is not None:
        config = tmp_path / "gateways.toml"
        config.write_text(f"[profiles.p]\n{profile_line}\n")
        extra = ["--config", config]
    result, asked = runs.run(*extra)
    assert result.exit_code == UNKNOWN, result.stdout
    assert words in result.first_line, result.first_line
    assert asked == [] and "Traceback" not in result.stdout + result.stderr


# --- a failing token request drops the entry -----------------------------------------------------

def test_a_token_refusal_after_a_kept_answer_drops_it(checks) -> None:
    runs = checks("graph", "secret-expired")
    first, _ = runs.run()
    assert first.exit_code == CRITICAL, first.stdout
    assert len(runs.entries()) == 1  # discovery itself worked
    second, asked = runs.run()
    assert steady(second) == steady(first) and discoveries(asked) == 0
    assert runs.entries() == []  # the next run asks again
    _, asked = runs.run()
    assert discoveries(asked) == 1


# --- caches that cannot be used ----------------------------------------------------------------

def entry_of(runs: Checks) -> tuple[Path, dict]:
    """The entry a healthy run wrote, and its content."""
    runs.run()
    [path] = runs.entries()
    return path, json.loads(path.read_text())


def rewrite(path: Path, content: str | bytes) -> None:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    path.chmod(0o600)


def corrupt(path: Path, entry: dict) -> None:
    rewrite(path, json.dumps(entry)[:-40])


def oversized(path: Path, entry: dict) -> None:
    entry["document"]["padding"] = "x" * 70_000
    rewrite(path, json.dumps(entry))


def impostor(path: Path, entry: dict) -> None:
    entry["document"]["token_endpoint"] = "https://127.0.0.1:9/tenant/oauth2/v2.0/token"
    rewrite(path, json.dumps(entry))


def other_authority(path: Path, entry: dict) -> None:
    entry["url"] = entry["url"].replace("/v2.0/", "/other/v2.0/")
    rewrite(path, json.dumps(entry))


def expired(path: Path, entry: dict) -> None:
    entry["fetched"] = time.time() - 2 * 24 * 3600
    rewrite(path, json.dumps(entry))


def from_the_future(path: Path, entry: dict) -> None:
    entry["fetched"] = time.time() + 3600
    rewrite(path, json.dumps(entry))


def unusable_for_msal(path: Path, entry: dict) -> None:
    # The token endpoint is at the sign-in host, but msal finds no tenant in its path.
    entry["document"]["token_endpoint"] = "/".join(entry["url"].split("/")[:3]) + "/"
    del entry["document"]["authorization_endpoint"]
    rewrite(path, json.dumps(entry))


def not_text(path: Path, entry: dict) -> None:
    rewrite(path, b"\xff\xfe\x00{")


def not_an_entry(path: Path, entry: dict) -> None:
    rewrite(path, json.dumps([entry]))


def a_symlink(path: Path, entry: dict) -> None:
    elsewhere = path.parent.parent / "elsewhere.json"
    rewrite(elsewhere, json.dumps(entry))
    path.unlink()
    path.symlink_to(elsewhere)


def a_fifo(path: Path, entry: dict) -> None:
    path.unlink()
    os.mkfifo(path, 0o600)


def loose_file(path: Path, entry: dict) -> None:
    path.chmod(0o666)


def another_users_file(path: Path, entry: dict) -> None:
    os.chown(path, NOBODY, NOBODY)


def loose_directory(path: Path, entry: dict) -> None:
    path.parent.chmod(0o777)


def another_users_directory(path: Path, entry: dict) -> None:
    os.chown(path.parent, NOBODY, NOBODY)


def symlinked_directory(path: Path, entry: dict) -> None:
    real = path.parent.parent / "real"
    path.parent.rename(real)
    path.parent.symlink_to(real)


def directory_is_a_file(path: Path, entry: dict) -> None:
    shutil.rmtree(path.parent)
    rewrite(path.parent, "not a directory")


AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")

BROKEN = [
    pytest.param(corrupt, "not JSON", id="corrupt"),
    pytest.param(not_text, "not JSON", id="not-text"),
    pytest.param(not_an_entry, "not a discovery cache entry", id="not-an-entry"),
    pytest.param(oversized, "over 64 KiB", id="oversized"),
    pytest.param(impostor, "not used: the discovery document names a token endpoint at "
                 "https://127.0.0.1:9/tenant/oauth2/v2.0/token, not at the sign-in host",
                 id="impostor-token-endpoint"),
    pytest.param(other_authority, "kept for another authority, tenant or --ca-file",
                 id="other-authority"),
    pytest.param(expired, "older than 24 hours (48h 00min)", id="expired"),
    pytest.param(from_the_future, "dated in the future", id="future"),
    pytest.param(unusable_for_msal, "msal refused it", id="unusable-for-msal"),
    pytest.param(a_symlink, "it is a symbolic link", id="symlink"),
    pytest.param(a_fifo, "not a regular file", id="fifo"),
    pytest.param(loose_file, "it has mode 0666, not 0600", id="loose-file"),
    pytest.param(another_users_file, f"it belongs to uid {NOBODY}, not to this user",
                 id="another-users-file", marks=AS_ROOT),
    pytest.param(loose_directory, "has mode 0777, not 0700", id="loose-directory"),
    pytest.param(another_users_directory, f"belongs to uid {NOBODY}, not to this user",
                 id="another-users-directory", marks=AS_ROOT),
    pytest.param(symlinked_directory, "is a symbolic link", id="symlinked-directory"),
    pytest.param(directory_is_a_file, "is not a directory", id="directory-is-a-file"),
]


@pytest.mark.parametrize(("damage", "words"), BROKEN)
def test_a_cache_that_cannot_be_used_gives_the_same_result_and_says_why(
        checks, damage, words) -> None:
    runs = checks("graph")
    path, entry = entry_of(runs)
    reference, _ = runs.run("-v", env={**runs.env, "XDG_CACHE_HOME": str(path.parent.parent
                                                                         / "fresh")})
    damage(path, entry)
    result, asked = runs.run("-v")
    assert steady(result) == steady(reference), result.stdout
    assert discoveries(asked) == 1  # it went on without the cache
    assert words in cache_note(result), result.stdout
    assert "Traceback" not in result.stdout + result.stderr and not result.stderr
    quiet, _ = runs.run()
    assert "discovery_cache" not in quiet.stdout  # a note for -v only


def in_mount_namespace(setup: str, mount_point: Path, command: list[str],
                       env: dict[str, str]) -> CheckRun:
    """The command with a file system of its own at mount_point (a tmpfs set up by `setup`),
    in a mount namespace: a read-only or full disk without touching the machine's."""
    mount_point.mkdir(parents=True, exist_ok=True)
    script = f'mount -t tmpfs -o size=16k tmpfs "$0" && {setup} && exec "$@"'
    done = subprocess.run(["unshare", "-m", "sh", "-c", script, str(mount_point), *command],
                          capture_output=True, text=True, timeout=60, env=env,
                          stdin=subprocess.DEVNULL)
    return CheckRun(done.returncode, done.stdout, done.stderr)


def mount_namespaces() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not mount_namespaces(), reason="needs unshare -m (root)")
@pytest.mark.parametrize(("setup", "words"), [
    pytest.param('mount -o remount,ro "$0"', "(Read-only file system)", id="read-only"),
    pytest.param('mkdir "$0/check_mailgw" && chmod 700 "$0/check_mailgw" && '
                 '{ cat /dev/zero > "$0/fill" 2>/dev/null || true; }',
                 "No space left on device", id="full"),
])
def test_a_disk_that_takes_no_entry_gives_the_same_result_and_says_why(
        checks, setup, words, tmp_path) -> None:
    runs = checks("graph")
    reference, _ = runs.run("-v")
    home = tmp_path / "mounted"
    env = {**runs.env, "XDG_CACHE_HOME": str(home)}
    runs.relay.clear()
    result = in_mount_namespace(setup, home, [str(PLUGIN), *runs.args, "-v"], env)
    assert steady(result) == steady(reference), result.stdout + result.stderr
    assert words in cache_note(result), result.stdout
    assert "not kept" in cache_note(result)


@pytest.mark.skipif(not mount_namespaces(), reason="needs unshare -m (root)")
def test_a_home_that_is_not_writable_is_a_quiet_skip(checks, tmp_path) -> None:
    runs = checks("graph")
    reference, _ = runs.run()
    home = tmp_path / "home"
    env = {key: value for key, value in runs.env.items() if key != "XDG_CACHE_HOME"}
    env["HOME"] = str(home)
    for verbosity in ((), ("-v",)):
        result = in_mount_namespace('mount -o remount,ro "$0"', home,
                                    [str(PLUGIN), *runs.args, *verbosity], env)
        assert steady(result) == steady(reference), result.stdout
        assert not result.stderr
    assert f"not kept: cannot create {home}/.cache (Read-only file system)" in \
        cache_note(result), result.stdout
