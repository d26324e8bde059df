"""One tray per user session: a second start asks the running one to show its details."""

from __future__ import annotations

import getpass
import re

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket


def instance_name() -> str:
    try:
        user = getpass.getuser()
    except Exception:
        user = "user"
    return "pdvsync-agent-" + re.sub(r"[^A-Za-z0-9_-]", "_", user)


def send_to_running(name: str, message: str = "show-details", timeout_ms: int = 1000) -> bool:
    """True when a running instance received the message."""
    socket = QLocalSocket()
    socket.connectToServer(name)
    if not socket.waitForConnected(timeout_ms):
        return False
    socket.write(message.encode("utf-8") + b"\n")
    socket.flush()
    socket.waitForBytesWritten(timeout_ms)
    socket.disconnectFromServer()
    return True


class SingleInstance(QObject):
    messageReceived = Signal(str)

    def __init__(self, name: str) -> None:
        super().__init__()
        self.server = QLocalServer(self)
        QLocalServer.removeServer(name)  # a stale socket left by a crash
        if not self.server.listen(name):
            raise RuntimeError(f"cannot listen on local socket {name}: {self.server.errorString()}")
        self.server.newConnection.connect(self._accept)

    def _accept(self) -> None:
        while self.server.hasPendingConnections():
            conn = self.server.nextPendingConnection()
            conn.readyRead.connect(lambda c=conn: self._read(c))

    def _read(self, conn: QLocalSocket) -> None:
        while conn.canReadLine():
            self.messageReceived.emit(
                bytes(conn.readLine().data()).decode("utf-8", "replace").strip()
            )

    def close(self) -> None:
        self.server.close()
