"""irctest controller for mxircd, an IRC server whose network is Matrix.

Each test case gets a fresh Dendrite and a fresh mxircd store, started by
the rig (conformance/irctest/rig, a Go program). run.sh builds the rig and
mxircd into $MXIRCD_IRCTEST_BIN and puts this folder on PYTHONPATH, so that
irctest finds this module with `--controller mxircd_controller`.

See docs/irctest.md.
"""

from __future__ import annotations

import os
from pathlib import Path
import re
import shutil
import signal
import subprocess
from typing import Optional, Set

from irctest.basecontrollers import BaseServerController, DirectoryBasedController
from irctest.runner import NotImplementedByController
from irctest.specifications import Capabilities


def _bin(name: str) -> str:
    folder = os.environ.get("MXIRCD_IRCTEST_BIN")
    if not folder:
        raise RuntimeError(
            "MXIRCD_IRCTEST_BIN is not set: run irctest through "
            "conformance/irctest/run.sh, which builds mxircd and the rig"
        )
    return str(Path(folder) / name)


class MxircdController(BaseServerController, DirectoryBasedController):
    software_name = "mxircd"
    _port_wait_interval = 0.05
    # SASL PLAIN logs in to Matrix with the account's password; EXTERNAL
    # needs TLS and a registered certificate, which irctest cannot set up.
    supported_sasl_mechanisms: Set[str] = {"PLAIN"}
    supports_sts = False
    # The service nick answers to NickServ too.
    nickserv = "NickServ"
    # Messages between two IRC clients go through Matrix: the sender's
    # line is a request to the homeserver, and the recipient sees it when
    # its session's /sync returns. irctest synchronises with PING/PONG,
    # which mxircd answers at once, so a test that reads another client
    # right after a send would read too early without a pause.
    sync_sleep_time = float(os.environ.get("MXIRCD_IRCTEST_SYNC_SLEEP", "0.3"))

    # What mxircd advertises in CAP LS: a NAK of one of these is then a
    # failure rather than a skip.
    capabilities = frozenset(
        (
            Capabilities.ACCOUNT_NOTIFY,
            Capabilities.ACCOUNT_TAG,
            Capabilities.AWAY_NOTIFY,
            Capabilities.BATCH,
            Capabilities.ECHO_MESSAGE,
            Capabilities.EXTENDED_JOIN,
            Capabilities.EXTENDED_MONITOR,
            Capabilities.LABELED_RESPONSE,
            Capabilities.MESSAGE_REDACTION,
            Capabilities.MESSAGE_TAGS,
            Capabilities.MULTILINE,
            Capabilities.MULTI_PREFIX,
            Capabilities.READ_MARKER,
            Capabilities.SERVER_TIME,
            Capabilities.SETNAME,
        )
    )

    # The rig of the test before, if it is still running: irctest starts
    # the server in setUp, and a test that then skips (account_registration
    # does) is never torn down. Tests run one at a time, so a rig still
    # alive when the next test starts is such a leftover.
    _running: Optional[subprocess.Popen] = None

    def run(
        self,
        hostname: str,
        port: int,
        *,
        password: Optional[str],
        ssl: bool,
        run_services: bool,
        faketime: Optional[str],
        websocket_hostname: Optional[str] = None,
        websocket_port: Optional[int] = None,
    ) -> None:
        if password is not None:
            # PASS is how a client gives its Matrix password; there is no
            # server password to set.
            raise NotImplementedByController("PASS")
        assert self.proc is None
        self.port = port
        self.hostname = hostname
        self.create_config()
        assert self.directory

        args = [
            _bin("rig"),
            "serve",
            "-dir",
            str(self.directory),
            "-listen",
            f"{hostname}:{port}",
            "-mxircd",
            _bin("mxircd"),
            "-log-level",
            "debug" if self.debug_mode else "info",
        ]
        if ssl:
            self.gen_ssl()
            args += ["-tls-cert", str(self.pem_path), "-tls-key", str(self.key_path)]
        if websocket_hostname is not None:
            args += ["-websocket", f"{websocket_hostname}:{websocket_port}"]

        if faketime and shutil.which("faketime"):
            args = ["faketime", "-f", faketime] + args
            self.faketime_enabled = True

        leftover = MxircdController._running
        if leftover is not None and leftover.poll() is None:
            os.killpg(leftover.pid, signal.SIGTERM)
            try:
                leftover.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(leftover.pid, signal.SIGKILL)
        self.proc = self.execute(args, proc_name="mxircd")
        MxircdController._running = self.proc

    def wait_for_services(self) -> None:
        # The service nick (alias NickServ) is part of mxircd.
        self.wait_for_port()

    def registerUser(
        self,
        case,  # irctest.cases.BaseServerTestCase
        username: str,
        password: Optional[str] = None,
    ) -> None:
        """Creates the Matrix account `username` (on the test's Dendrite),
        which SASL PLAIN and PASS then log in to with `password`."""
        assert password is not None
        self.wait_for_port()
        assert self.directory
        subprocess.run(
            [_bin("rig"), "register", "-dir", str(self.directory), username, password],
            check=True,
            timeout=60,
        )

    def kill(self) -> None:
        if self.proc:
            self.kill_proc()
        self._keep_logs()
        super().kill()

    def _keep_logs(self) -> None:
        """With MXIRCD_IRCTEST_LOGS set, copies mxircd's and Dendrite's logs
        of this test there (the test's directory is removed)."""
        keep = os.environ.get("MXIRCD_IRCTEST_LOGS")
        if not keep or not self.directory:
            return
        test = os.environ.get("PYTEST_CURRENT_TEST", "unknown").split(" ")[0]
        dest = Path(keep) / re.sub(r"[^A-Za-z0-9_.-]+", "_", test)[-150:]
        dest.mkdir(parents=True, exist_ok=True)
        for src in ("mxircd.log", "dendrite/dendrite.log", "mxircd.toml"):
            path = self.directory / src
            if path.exists():
                shutil.copy(path, dest / Path(src).name)


def get_irctest_controller_class():
    return MxircdController
