"""The bounds of the hostile-input tests themselves (tests/child_bounds.py): a test marked ``bounded`` that hangs or
grows its memory fails, the timer is armed under pytest-xdist too, and a child is killed at its wall time."""
import mmap
import signal
import time

import pytest
from child_bounds import bounded_here, reset_peak_rss, run_child


def test_a_bounded_test_that_hangs_fails_naming_its_wall_time():
    if not hasattr(signal, "setitimer"):
        pytest.skip("no SIGALRM here: the wall-time bound is a no-op")
    t0 = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match="hang ran longer than .* s of wall time"):
        with bounded_here("hang", seconds=0.2):
            time.sleep(60)
    assert time.monotonic() - t0 < 30
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0  # disarmed again


def test_a_bounded_test_that_grows_the_peak_rss_fails():
    if reset_peak_rss() is None:
        pytest.skip("no /proc/self/clear_refs here: the memory bound is a no-op")
    with pytest.raises(pytest.fail.Exception, match="hog grew this process's peak RSS by"):
        # fresh pages, touched, and still mapped when the bound reads the peak: with a malloc'd block freed inside,
        # this test failed once in a full CI run (the block may reuse memory the worker kept resident, or the
        # kernel may update the peak lazily), which the same code never did alone
        block = mmap.mmap(-1, 300 << 20)
        try:
            with bounded_here("hog", rss_mb=100):
                for offset in range(0, len(block), mmap.PAGESIZE):
                    block[offset] = 1
        finally:
            block.close()
    with bounded_here("small", rss_mb=100):  # the peak starts afresh: the 300 MB before do not count
        pass


@pytest.mark.bounded
def test_the_marker_arms_the_timer_in_the_process_that_runs_the_test():
    """Under pytest-xdist (`-n 2`) the tests run in each worker's main thread, where SIGALRM can be delivered."""
    if hasattr(signal, "setitimer"):
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 0


def test_a_child_past_its_wall_time_is_killed_and_its_wall_time_reported():
    r = run_child("-c", "import time; time.sleep(60)", wall_timeout=1)
    assert r.returncode != 0 and 1 <= r.wall_s < 30
