"""harness.upstream.skips: which tests of a Go package start a dockerd of their own, read from the source."""

from __future__ import annotations

from pathlib import Path

from harness.upstream import skips

MAIN = """package container

func TestDirect(t *testing.T) {
	d := daemon.New(t)
	defer d.Stop(t)
}

func TestViaHelper(t *testing.T) {
	ctx := setupTest(t)
	startSwarm(ctx, t)
}

func TestPlain(t *testing.T) {
	ctx := setupTest(t)
	_ = ctx
}

func (s *suite) TestMethodLike(t *testing.T) {
	s.withDaemon(t)
}
"""

HELPERS = """package container

func startSwarm(ctx context.Context, t *testing.T) *daemon.Daemon {
	return deeper(ctx, t)
}

func deeper(ctx context.Context, t *testing.T) *daemon.Daemon {
	return swarm.NewSwarm(ctx, t, testEnv)
}

func (s *suite) withDaemon(t *testing.T) {
	_ = daemon.NewDaemon(t.TempDir())
}

func setupTest(t *testing.T) context.Context {
	return context.Background()
}
"""

WINDOWS = """package container

func TestPlain(t *testing.T) {
	daemon.New(t)
}
"""


def test_direct_and_transitive_daemon_starters_are_found(tmp_path: Path) -> None:
    (tmp_path / "main_test.go").write_text(MAIN)
    (tmp_path / "helpers.go").write_text(HELPERS)
    (tmp_path / "plain_windows_test.go").write_text(WINDOWS)  # never built on Linux: ignored
    (tmp_path / "README.md").write_text("daemon.New(t)")
    assert skips.tests_starting_daemons(str(tmp_path)) == ["TestDirect", "TestMethodLike", "TestViaHelper"]


def test_function_bodies_end_at_the_closing_brace_of_gofmt() -> None:
    bodies = skips.package_functions([MAIN])
    assert set(bodies) == {"TestDirect", "TestViaHelper", "TestPlain", "TestMethodLike"}
    assert "daemon.New" in bodies["TestDirect"] and "daemon.New" not in bodies["TestViaHelper"]
