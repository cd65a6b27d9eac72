"""Tests of the history checker (sesame_fleet.history), on hand-made
histories: a clean one must pass, each broken promise must be flagged with
the right promise and operations, and what faults legitimately cause
(concurrency, ambiguous answers, documented refusals) must not be.

  python3 -m unittest discover -s scripts/lib -p 'test_*.py'
"""

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import unittest

from sesame_fleet import history
from sesame_fleet.history import check


class H:
    """A history under construction. Each builder returns the new
    operation's id; times are given explicitly (start, end)."""

    def __init__(self):
        self.ops = []
        self.faults = []
        self.users_present = None

    def op(self, op, user, start, end, status, error=None, via="lb", **fields):
        oid = len(self.ops) + 1
        self.ops.append(dict(id=oid, client=f"c-{user}", via=via, op=op,
                             user=user, start=start, end=end, status=status,
                             error=error, **fields))
        return oid

    def register(self, user, password, start, end, status=201, **kw):
        return self.op("register", user, start, end, status,
                       password=password, **kw)

    def login(self, user, password, start, end, status=200, session=None, **kw):
        if status == 200 and session is None:
            session = f"s{len(self.ops) + 1}"
        return self.op("login", user, start, end, status, password=password,
                       session=session if status == 200 else None, **kw)

    def change(self, user, old, new, start, end, status=204, **kw):
        return self.op("change_password", user, start, end, status,
                       old_password=old, new_password=new, **kw)

    def logout(self, user, session, start, end, status=204, **kw):
        return self.op("logout", user, start, end, status, session=session, **kw)

    def check(self, user, session, start, end, status=200, **kw):
        return self.op("session", user, start, end, status, session=session, **kw)

    def fault(self, name, args, start, end):
        self.faults.append(dict(name=name, args=list(args), start=start, end=end))

    def session_of(self, oid):
        return self.ops[oid - 1]["session"]

    def dict(self):
        return {"operations": self.ops, "faults": self.faults,
                "users_present": self.users_present}

    def run(self, **kw):
        return check(self.dict(), **kw)


def registered(user="ann", password="p1"):
    h = H()
    h.register(user, password, 0, 1)
    return h


class Helpers(unittest.TestCase):
    def assertClean(self, report):
        self.assertEqual(report["violations"], [], json.dumps(report, indent=1))

    def assertFlagged(self, report, *expected):
        """Exactly the violations expected, as (promise, [ids])."""
        got = [(v["promise"], v["operations"]) for v in report["violations"]]
        self.assertEqual(sorted(got), sorted((p, list(ids)) for p, ids in expected),
                         json.dumps(report["violations"], indent=1))
        for v in report["violations"]:
            self.assertIsInstance(v["what"], str)
            self.assertTrue(v["what"])


class CleanHistory(Helpers):
    def test_a_clean_run_passes(self):
        h = registered()
        l1 = h.login("ann", "p1", 2, 3)
        s1 = h.session_of(l1)
        h.check("ann", s1, 3.5, 4)
        h.check("ann", s1, 4.5, 5, via="sesame-2")
        h.change("ann", "p1", "p2", 6, 7)
        h.login("ann", "p1", 8, 9, status=401, error="invalid_credentials",
                via="sesame-1")
        l2 = h.login("ann", "p2", 10, 11)
        s2 = h.session_of(l2)
        h.check("ann", s1, 11.5, 12, status=401, via="sesame-2")  # changed
        h.check("ann", s2, 12.5, 13)
        h.logout("ann", s2, 14, 15)
        h.check("ann", s2, 16, 17, status=401, via="sesame-1")
        h.check("ann", s2, 16, 17, status=401, via="sesame-2")
        h.logout("ann", s2, 18, 19)  # idempotent
        h.register("bob", "b1", 0, 1)
        h.register("bob", "b2", 2, 3, status=409, error="exists")
        h.login("bob", "b2", 4, 5, status=401)
        h.users_present = ["ann", "bob"]
        report = h.run()
        self.assertClean(report)
        self.assertEqual(report["operations"], 16)
        nf = report["availability"]["no fault"]
        # Expected ok: 3 registrations (bob's 409 re-registration too,
        # which is refused), login p1, 2 checks of s1, the change, login
        # p2, check s2, logout s2: 10, of which 9 answered ok. Expected
        # refused: login p1 after the change, checks after revocation,
        # bob's b2 login; the second logout is unknown.
        self.assertEqual(nf, {"operations": 16, "expected_ok": 10, "ok": 9,
                              "share": 0.9, "no_answer": 0, "refused_503": 0})


class Promise1(Helpers):
    def test_acked_registration_missing_is_flagged(self):
        h = registered()
        lost = h.register("bob", "b1", 0, 1)
        h.register("cid", "c1", 0, 1, status=503, error="unavailable")
        h.register("dan", "d1", 0, 1, status=409, error="exists")
        h.users_present = ["ann"]
        report = h.run()
        self.assertFlagged(report, (1, [lost]))
        self.assertIn("bob", report["violations"][0]["what"])

    def test_not_read_is_not_checked(self):
        h = registered()
        h.users_present = None
        self.assertClean(h.run())


class Promise2(Helpers):
    def test_old_password_after_acked_change(self):
        h = registered()
        c = h.change("ann", "p1", "p2", 2, 3)
        bad = h.login("ann", "p1", 4, 5)
        self.assertFlagged(h.run(), (2, [bad, c]))

    def test_old_password_on_another_instance_after_failover(self):
        h = registered()
        h.fault("db-failover", [], 2.5, 6)
        c = h.change("ann", "p1", "p2", 2, 3, via="sesame-1")
        h.login("ann", "p2", 4, 5, via="sesame-1")
        bad = h.login("ann", "p1", 7, 8, via="sesame-2")
        self.assertFlagged(h.run(), (2, [bad, c]))

    def test_names_the_last_acked_change(self):
        h = registered()
        h.change("ann", "p1", "p2", 2, 3)
        c2 = h.change("ann", "p2", "p3", 4, 5)
        bad = h.login("ann", "p1", 6, 7)
        bad2 = h.login("ann", "p2", 8, 9)
        self.assertFlagged(h.run(), (2, [bad, c2]), (2, [bad2, c2]))

    def test_password_never_valid_names_the_registration(self):
        h = H()
        reg = h.register("ann", "p1", 0, 1)
        bad = h.login("ann", "nope", 2, 3)
        self.assertFlagged(h.run(), (2, [bad, reg]))

    def test_login_of_a_user_never_registered(self):
        h = H()
        h.register("ann", "p1", 0, 1, status=409, error="exists")
        bad = h.login("ann", "p1", 2, 3)
        bad2 = h.login("zed", "z", 2, 3)
        self.assertFlagged(h.run(), (2, [bad]), (2, [bad2]))

    def test_login_concurrent_with_the_change_is_not_flagged(self):
        h = registered()
        h.change("ann", "p1", "p2", 2, 5)
        h.login("ann", "p1", 4, 6)    # started before the ack
        h.login("ann", "p1", 4.9, 5)  # ended with it
        h.login("ann", "p2", 3, 4)    # new password, mid-change
        self.assertClean(h.run())

    def test_either_password_after_an_ambiguous_change(self):
        for status, error in ((503, "unavailable"), (0, None), (502, None)):
            with self.subTest(status=status):
                h = registered()
                c = h.change("ann", "p1", "p2", 2, 3, status=status, error=error)
                h.login("ann", "p1", 4, 5)
                h.login("ann", "p2", 6, 7)
                h.login("ann", "p1", 8, 9)
                h.login("ann", "p1", 10, 11, status=401)
                h.login("ann", "p2", 12, 13, status=401)
                report = h.run()
                if status == 502:  # only the undocumented answer itself
                    self.assertFlagged(report, (4, [c]))
                else:
                    self.assertClean(report)

    def test_acked_change_after_an_ambiguous_one_settles_it(self):
        h = registered()
        h.change("ann", "p1", "p2", 2, 3, status=0)
        c = h.change("ann", "p1", "p3", 4, 5)
        bad = h.login("ann", "p2", 6, 7)
        h.login("ann", "p3", 8, 9)
        self.assertFlagged(h.run(), (2, [bad, c]))
        # ... unless the ambiguous change may land late (a frozen instance).
        self.assertClean(h.run(late_writes=True))

    def test_overlapping_acked_changes_may_land_in_either_order(self):
        h = registered()
        h.change("ann", "p1", "a", 2, 6)
        h.change("ann", "p1", "b", 3, 5)
        h.login("ann", "a", 7, 8)
        h.login("ann", "b", 9, 10)
        h.login("ann", "a", 11, 12, status=401)  # not certain: no P4
        self.assertClean(h.run())

    def test_ambiguous_registration_password_is_possible(self):
        h = H()
        h.register("ann", "p1", 0, 1, status=0)
        h.login("ann", "p1", 2, 3)
        h.login("ann", "p1", 4, 5, status=401)
        h.users_present = []
        self.assertClean(h.run())

    def test_registration_concurrent_with_the_login(self):
        h = H()
        h.register("ann", "p1", 0, 3)
        h.login("ann", "p1", 1, 2)
        h.login("ann", "p1", 1, 2, status=401)
        self.assertClean(h.run())

    def test_refused_change_changes_nothing(self):
        h = registered()
        h.change("ann", "wrong", "p2", 2, 3, status=401)
        bad = h.login("ann", "p2", 4, 5)
        refused = h.login("ann", "p1", 6, 7, status=401)
        self.assertFlagged(h.run(), (2, [bad, 1]), (4, [refused]))


class Promise3(Helpers):
    def test_session_accepted_after_logout(self):
        h = registered()
        l = h.login("ann", "p1", 2, 3, via="sesame-1")
        s = h.session_of(l)
        out = h.logout("ann", s, 4, 5, via="sesame-1")
        bad = h.check("ann", s, 6, 7, via="sesame-2")
        self.assertFlagged(h.run(), (3, [bad, out, l]))

    def test_session_accepted_after_password_change(self):
        h = registered()
        l = h.login("ann", "p1", 2, 3)
        s = h.session_of(l)
        c = h.change("ann", "p1", "p2", 4, 5, via="sesame-2")
        bad = h.check("ann", s, 6, 7, via="sesame-1")
        self.assertFlagged(h.run(), (3, [bad, c, l]))

    def test_names_the_earliest_revocation_once(self):
        h = registered()
        l = h.login("ann", "p1", 2, 3)
        s = h.session_of(l)
        out = h.logout("ann", s, 4, 5)
        h.change("ann", "p1", "p2", 6, 7)
        bad = h.check("ann", s, 8, 9)
        self.assertFlagged(h.run(), (3, [bad, out, l]))

    def test_session_from_a_login_concurrent_with_the_change(self):
        h = registered()
        l = h.login("ann", "p1", 2, 4.5)
        h.change("ann", "p1", "p2", 4, 5)
        h.check("ann", h.session_of(l), 6, 7)
        self.assertClean(h.run())

    def test_check_concurrent_with_the_revocation(self):
        h = registered()
        l = h.login("ann", "p1", 2, 3)
        s = h.session_of(l)
        h.logout("ann", s, 4, 6)
        h.check("ann", s, 5, 7)   # started before the ack
        h.check("ann", s, 6, 7)   # started at the ack
        self.assertClean(h.run())

    def test_logout_again_is_idempotent(self):
        h = registered()
        l = h.login("ann", "p1", 2, 3)
        s = h.session_of(l)
        h.logout("ann", s, 4, 5)
        h.logout("ann", s, 6, 7, via="sesame-2")
        self.assertClean(h.run())

    def test_ambiguous_revocations_are_not_certain(self):
        h = registered()
        l = h.login("ann", "p1", 2, 3)
        s = h.session_of(l)
        h.logout("ann", s, 4, 5, status=503, error="unavailable")
        h.change("ann", "p1", "p2", 6, 7, status=0)
        h.check("ann", s, 8, 9)
        self.assertClean(h.run())


class RevocationBound(Helpers):
    """With a bound (the instances' session caches): a check that starts
    within it after the revocation's acknowledgment may be accepted; one
    that starts after it may not."""

    def revoked(self, how):
        h = registered()
        l = h.login("ann", "p1", 2, 3)
        s = h.session_of(l)
        if how == "logout":
            rev = h.logout("ann", s, 4, 5, via="sesame-1")
        else:
            rev = h.change("ann", "p1", "p2", 4, 5, via="sesame-1")
        return h, l, s, rev

    def test_accepted_within_the_bound(self):
        for how in ("logout", "change"):
            with self.subTest(how):
                h, _, s, _ = self.revoked(how)
                h.check("ann", s, 5.01, 5.02, via="sesame-2")
                h.check("ann", s, 5.05, 5.06, via="sesame-3")  # at the bound
                self.assertClean(h.run(revocation_bound=0.05))
                # Without the bound, the same history breaks promise 3.
                self.assertEqual([v["promise"] for v in h.run()["violations"]], [3, 3])

    def test_accepted_after_the_bound(self):
        for how in ("logout", "change"):
            with self.subTest(how):
                h, l, s, rev = self.revoked(how)
                h.check("ann", s, 5.01, 5.02, via="sesame-2")
                bad = h.check("ann", s, 5.06, 5.07, via="sesame-2")
                report = h.run(revocation_bound=0.05)
                self.assertFlagged(report, (3, [bad, rev, l]))
                self.assertIn("50 ms allowed", report["violations"][0]["what"])

    def test_expectations_follow_the_bound(self):
        h, _, s, _ = self.revoked("logout")
        h.check("ann", s, 5.01, 5.02, status=401, error="unauthorized")
        h.check("ann", s, 5.2, 5.3, status=401, error="unauthorized")
        checker = history._Checker(h.dict(), history.DEFAULT_DOCUMENTED, False, 0.05)
        within, after = (checker.ops[-2], checker.ops[-1])
        self.assertEqual(checker.expectation(within), "unknown")
        self.assertEqual(checker.expectation(after), "refused")

    def test_a_bad_bound_is_refused(self):
        with self.assertRaises(ValueError):
            registered().run(revocation_bound=-1)

    def test_the_command_line_takes_the_bound(self):
        h, _, s, _ = self.revoked("logout")
        h.check("ann", s, 5.01, 5.02)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "h.json")
            with open(path, "w") as f:
                json.dump(h.dict(), f)
            with contextlib.redirect_stdout(io.StringIO()):
                self.assertEqual(history.main([path]), 1)
                self.assertEqual(history.main(["--revocation-bound", "0.05", path]), 0)
            with contextlib.redirect_stderr(io.StringIO()):
                self.assertEqual(history.main(["--revocation-bound", path]), 2)


class Promise4(Helpers):
    def test_401_for_the_certainly_current_password(self):
        h = registered()
        bad = h.login("ann", "p1", 2, 3, status=401, error="invalid_credentials",
                      via="sesame-2")
        h.change("ann", "p1", "p2", 4, 5)
        bad2 = h.login("ann", "p2", 6, 7, status=401)
        self.assertFlagged(h.run(), (4, [bad]), (4, [bad2]))

    def test_undocumented_answers(self):
        h = registered()
        e500 = h.login("ann", "p1", 2, 3, status=500, error="internal")
        e502 = h.op("session", "ann", 4, 5, 502, session="x")
        e503 = h.register("bob", "b", 6, 7, status=503, error="database")
        e504 = h.change("ann", "p1", "p2", 8, 9, status=504)
        e429 = h.login("ann", "p1", 10, 11, status=429)
        report = h.run()
        self.assertFlagged(report, (4, [e500]), (4, [e502]), (4, [e503]),
                           (4, [e504]), (4, [e429]))
        self.assertIn("undocumented answer 500", report["violations"][0]["what"])

    def test_documented_refusals_and_no_answer_are_not_flagged(self):
        h = registered()
        h.login("ann", "p1", 2, 3, status=503, error="unavailable")
        h.login("ann", "p1", 4, 5, status=503, error="overloaded")
        h.login("ann", "p1", 6, 7, status=429, error="rate_limited")
        h.login("ann", "p1", 8, 9, status=0)
        h.check("ann", "s-unknown", 10, 11, status=0)
        report = h.run()
        self.assertClean(report)
        self.assertEqual(report["availability"]["no fault"]["no_answer"], 2)
        self.assertEqual(report["availability"]["no fault"]["refused_503"], 2)

    def test_401_after_an_ambiguous_change_is_not_flagged(self):
        h = registered()
        h.change("ann", "p1", "p2", 2, 3, status=503, error="unavailable")
        h.login("ann", "p1", 4, 5, status=401)
        h.login("ann", "p2", 6, 7, status=401)
        self.assertClean(h.run())

    def test_401_concurrent_with_a_change_or_registration(self):
        h = H()
        h.register("ann", "p1", 0, 2)
        h.login("ann", "p1", 1, 3, status=401)   # registration not yet acked
        h.change("ann", "p1", "p1", 5, 6)        # same password, concurrent
        h.login("ann", "p1", 4, 5.5, status=401)
        h.change("ann", "zz", "p9", 7, 8, status=401)  # refused: no effect
        bad = h.login("ann", "p1", 7.5, 8.5, status=401)
        self.assertFlagged(h.run(), (4, [bad]))

    def test_one_report_per_operation(self):
        h = registered()
        bad = h.login("ann", "p1", 2, 3, status=500)
        report = h.run()
        self.assertFlagged(report, (4, [bad]))

    def test_documented_is_a_parameter(self):
        h = registered()
        over = h.login("ann", "p1", 2, 3, status=503, error="overloaded")
        h.login("ann", "p1", 4, 5, status=503, error="unavailable")
        self.assertFlagged(h.run(documented={(503, "unavailable")}), (4, [over]))
        self.assertClean(h.run(documented=[[503, "unavailable"],
                                           [503, "overloaded"]]))


class Availability(Helpers):
    def test_figures_for_a_fault_window(self):
        h = registered()                                    # 1: nf, ok
        l = h.login("ann", "p1", 2, 3)                      # 2: nf, ok
        s = h.session_of(l)
        h.fault("partition", ["sesame-1", "redis"], 10, 20)
        h.login("ann", "p1", 9, 10.5)                       # 3: ok/ok
        h.login("ann", "p1", 12, 13, status=503,
                error="unavailable")                        # 4: ok/503
        h.login("ann", "p1", 14, 15, status=0)              # 5: ok/none
        h.login("ann", "bad", 15, 16, status=401)           # 6: refused
        h.check("ann", s, 16, 17)                           # 7: ok/ok
        h.logout("ann", s, 18, 19)                          # 8: ok/ok
        h.check("ann", s, 19.5, 21, status=401)             # 9: refused
        h.login("ann", "p1", 20, 22, status=503,
                error="overloaded")                         # 10: ok/503
        h.login("ann", "p1", 25, 26)                        # 11: nf, ok
        h.fault("partition", ["sesame-1", "redis"], 30, 31)
        h.fault("redis-failover", [], 40, None)
        h.login("ann", "p1", 50, 51)                        # 12: redis, ok
        report = h.run()
        self.assertClean(report)
        av = report["availability"]
        self.assertEqual(list(av), ["partition sesame-1 redis",
                                    "partition sesame-1 redis #2",
                                    "redis-failover", "no fault"])
        self.assertEqual(av["partition sesame-1 redis"], {
            "operations": 8, "expected_ok": 6, "ok": 3, "share": 0.5,
            "no_answer": 1, "refused_503": 2})
        self.assertEqual(av["partition sesame-1 redis #2"], {
            "operations": 0, "expected_ok": 0, "ok": 0, "share": None,
            "no_answer": 0, "refused_503": 0})
        self.assertEqual(av["redis-failover"], {
            "operations": 1, "expected_ok": 1, "ok": 1, "share": 1.0,
            "no_answer": 0, "refused_503": 0})
        self.assertEqual(av["no fault"], {
            "operations": 3, "expected_ok": 3, "ok": 3, "share": 1.0,
            "no_answer": 0, "refused_503": 0})

    def test_share_rounds_to_three_decimals(self):
        h = registered()
        h.fault("freeze", ["sesame-2"], 1.5, 10)
        h.login("ann", "p1", 2, 3)
        h.login("ann", "p1", 4, 5, status=0)
        h.login("ann", "p1", 6, 7, status=0)
        fig = h.run()["availability"]["freeze sesame-2"]
        self.assertEqual((fig["expected_ok"], fig["ok"], fig["share"]), (3, 1, 0.333))


class Interface(Helpers):
    def test_malformed_histories_are_refused(self):
        bad = [
            {},
            {"operations": [{"id": 1, "op": "fly", "user": "a", "start": 0,
                             "end": 1, "status": 200}]},
            {"operations": [{"id": 1, "op": "login", "user": "a", "start": 2,
                             "end": 1, "status": 200, "password": "x"}]},
            {"operations": [{"id": 1, "op": "login", "user": "a", "start": 0,
                             "end": 1, "status": 200}]},
        ]
        h = registered()
        h.ops.append(dict(h.ops[0]))
        bad.append(h.dict())
        for history in bad:
            with self.subTest(history=history), self.assertRaises(ValueError):
                check(history)

    def test_load_and_main(self):
        with tempfile.TemporaryDirectory() as d:
            clean, broken = os.path.join(d, "clean.json"), os.path.join(d, "broken.json")
            h = registered()
            with open(clean, "w") as f:
                json.dump(h.dict(), f)
            h.login("ann", "nope", 2, 3)
            with open(broken, "w") as f:
                json.dump(h.dict(), f)
            self.assertEqual(history.load(clean), registered().dict())
            for path, rc, n in ((clean, 0, 0), (broken, 1, 1)):
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    self.assertEqual(history.main([path]), rc)
                self.assertEqual(len(json.loads(out.getvalue())["violations"]), n)
            with contextlib.redirect_stderr(io.StringIO()):
                self.assertEqual(history.main([]), 2)
                self.assertEqual(history.main([os.path.join(d, "none.json")]), 2)
            lib = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            proc = subprocess.run(
                [sys.executable, "-m", "sesame_fleet.history", broken],
                env=dict(os.environ, PYTHONPATH=lib), capture_output=True,
                text=True, timeout=60)
            self.assertEqual(proc.returncode, 1, proc.stderr)
            self.assertEqual(json.loads(proc.stdout)["violations"][0]["promise"], 2)


if __name__ == "__main__":
    unittest.main()
