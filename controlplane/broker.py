"""The embedded broker (`filesystem://`, the demo's): kombu's filesystem transport,
with each message written whole before any worker can see it.

kombu creates a message's file in the queue folder and then writes its bytes; a
worker polling the folder can take the file in between, read nothing and die on
the JSON error. Beat's ticks make that a matter of minutes. Here a message is
written under a name no queue matches and renamed into place, which is atomic on
one filesystem. `controlplane.celery` puts this transport behind `filesystem://`.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


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


class Transport(filesystem.Transport):
    Channel = Channel
