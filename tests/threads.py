"""Run a test's work on several threads at once and report the first failure
(an exception in a thread would otherwise only be printed)."""
import threading


def run_in_threads(work, args_list):
    """Call ``work(*args)`` for each ``args`` of ``args_list``, each on its own
    thread, all started together; re-raise the first exception any raised."""
    errors = []
    barrier = threading.Barrier(len(args_list))

    def run(args):
        try:
            barrier.wait()
            work(*args)
        except BaseException as e:      # noqa: BLE001 - re-raised below
            errors.append(e)
    threads = [threading.Thread(target=run, args=(a,)) for a in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
