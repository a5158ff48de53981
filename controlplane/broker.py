"""The embedded broker (`filesystem://`, the demo's): kombu's filesystem transport,
with every file written whole before another process can read it.

kombu creates a message's file in the queue folder and then writes its bytes; a
worker polling the folder can take the file in between, read nothing and die on
the JSON error. Beat's ticks make that a matter of minutes. The exchange tables
(which queue a message goes to) have the same gap when a worker binds its queue
while another process publishes. Here each file is written under a name nobody
reads and renamed into place, which is atomic on one filesystem; the tables'
read-modify-write is serialised by a lock file of their own. `controlplane.celery`
puts this transport behind `filesystem://`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem, virtual
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

Table = list[filesystem.exchange_queue_t]


def _write_whole(path: str, data: bytes) -> None:
    partial = f"{path}.partial-{uuid.uuid4().hex}"
    with open(partial, "wb") as out:
        out.write(data)
    os.replace(partial, path)


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs) -> None:
        # The name sorts as kombu's own do (by time), so the queue stays in order.
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # No dot in the name: `_get` matches files by their ".<queue>.msg" suffix.
        partial = os.path.join(self.data_folder_out, f"partial_{uuid.uuid4().hex}")
        try:
            with open(partial, "wb") as out:
                out.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as error:
            raise ChannelError(f"Cannot add file {final!r} to directory") from error

    def _update_table(self, exchange: str, change: Callable[[Table], Table]) -> None:
        file = self._exchange_file(exchange)
        self.control_folder.mkdir(exist_ok=True)
        try:
            with open(f"{file}.lock", "a") as guard:
                filesystem.lock(guard, filesystem.LOCK_EX)
                try:
                    before = self.get_table(exchange)
                    after = change(list(before))
                    if after != before:
                        _write_whole(str(file), str_to_bytes(dumps(after)))
                finally:
                    filesystem.unlock(guard)
        except OSError as error:
            raise ChannelError(f"Cannot update {file}") from error

    def queue_bind(self, queue, exchange=None, routing_key="", arguments=None, **kwargs) -> None:
        super().queue_bind(queue, exchange, routing_key, arguments, **kwargs)
        # kombu keeps declared bindings in a state shared by every connection of the
        # process, and marks one declared before it writes it to the table on disk. A
        # second connection (a worker's publisher beside its consumer) then finds it
        # declared, skips the write, and publishes while the table still lacks it: the
        # message is routed nowhere. Writing it here as well (idempotent, under the table
        # lock) means a bind has reached the disk when it returns.
        exchange = exchange or "amq.direct"
        meta = self.typeof(exchange).prepare_bind(queue, exchange, routing_key, arguments)
        self._queue_bind(exchange, *meta)

    def _queue_bind(self, exchange, routing_key, pattern, queue) -> None:
        bound = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._update_table(exchange, lambda table: table if bound in table else [bound, *table])

    def _delete(self, queue, exchange, routing_key, pattern, *args, **kwargs) -> None:
        virtual.Channel._delete(self, queue, exchange, routing_key, pattern, *args, **kwargs)
        bound = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._update_table(exchange, lambda table: [q for q in table if q != bound])


class Transport(filesystem.Transport):
    Channel = Channel
