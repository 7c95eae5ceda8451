"""A LiveKit agent (LiveKit Agents for Python) that speaks through the Runway avatar in direct mode,
and in its own voice whenever the avatar cannot be had.

It starts (or joins) the avatar session over the HTTP API and waits until it is live, joins the room
as the agent, streams a phrase to the avatar with DataStreamAudioOutput (LiveKit's data-stream avatar
protocol: `lk.audio_stream`, `lk.playback_started`, `lk.playback_finished`, `lk.clear_buffer`), waits
until the avatar has played it out, starts a second phrase and interrupts it, then ends the session.
The "phrases" are tone sequences standing in for your TTS. With an AgentSession, the same output is
`session.output.audio = DataStreamAudioOutput(...)` and the session calls it for you.

When the avatar cannot be had (the start is refused or not live in time, the avatar does not start
playing within AVATAR_START_TIMEOUT seconds, or it leaves the room because its session failed or ended
early), the agent publishes its own audio track and says the phrase there (again, if the avatar left
in the middle of it): the user never hears silence. With an AgentSession, switch `session.output.audio`
to an output on the agent's own track (what RoomIO publishes when there is no avatar).

Run it with the Python that `npm run setup` prepares (`.tools/agents/bin/python examples/agent.py`);
test/livekit-agent.test.ts runs this very file against `npm start`'s stack; the README shows an excerpt.
Environment: AVATAR_SESSIONS_URL (http://127.0.0.1:8080), SESSION_API_TOKEN, LIVEKIT_API_KEY and
LIVEKIT_API_SECRET (to mint the agent's own token), LIVEKIT_URL (the room's server when no live session
names it), ROOM, AGENT_IDENTITY, CONVERSATION_ID (default ROOM), AVATAR_START_TIMEOUT (10).
Prints one JSON line per event.
"""

import asyncio
import json
import os
import urllib.error
import urllib.request

import numpy as np
from livekit import api, rtc
from livekit.agents.voice.avatar import DataStreamAudioOutput

SAMPLE_RATE = 24000  # a typical TTS rate; the avatar resamples
FRAME = SAMPLE_RATE // 50  # 20 ms frames
AVATAR_START_TIMEOUT = float(os.environ.get("AVATAR_START_TIMEOUT", "10"))


def say(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def http(method: str, url: str, token: str, body: dict | None = None) -> dict:
    headers = {"authorization": f"Bearer {token}"} | ({"content-type": "application/json"} if body is not None else {})
    req = urllib.request.Request(url, method=method, headers=headers, data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req, timeout=60) as res:
        return json.loads(res.read() or b"{}")


def tones(*parts: tuple[float, float]) -> list[rtc.AudioFrame]:
    """(frequency in Hz, seconds) pairs as 20 ms frames of 16-bit mono PCM: stand-in TTS."""
    pcm = np.concatenate([0.3 * np.sin(2 * np.pi * hz * np.arange(int(s * SAMPLE_RATE)) / SAMPLE_RATE) for hz, s in parts])
    pcm = (pcm * 32767).astype(np.int16)
    return [rtc.AudioFrame(pcm[i:i + FRAME].tobytes(), SAMPLE_RATE, 1, len(pcm[i:i + FRAME])) for i in range(0, len(pcm), FRAME)]


class Voice:
    """Where the agent's speech goes: to the avatar while it can be had, else the agent's own track."""

    def __init__(self, room: rtc.Room, avatar: str | None) -> None:
        self.room, self.avatar, self.own = room, None, None
        self.gone, self.started = asyncio.Event(), asyncio.Event()
        if avatar:
            self.avatar = DataStreamAudioOutput(room, destination_identity=avatar,
                                                wait_remote_track=rtc.TrackKind.KIND_VIDEO, wait_playback_start=True)
            self.avatar.on("playback_started", lambda _ev: self.started.set())
            room.on("participant_disconnected", lambda p: p.identity == avatar and asyncio.ensure_future(self._left(avatar)))

    async def _left(self, identity: str) -> None:
        """The avatar left: gone, unless it is back at once (a renewal brings the next one under its identity)."""
        await asyncio.sleep(2)
        if identity not in self.room.remote_participants:
            self.gone.set()

    async def speak(self, phrase: int, frames: list[rtc.AudioFrame], cut_after: float | None = None) -> None:
        """Says `frames`, interrupted after `cut_after` seconds if given (as when the user barges in)."""
        if self.avatar and not self.gone.is_set() and await self._through_avatar(phrase, frames, cut_after):
            return
        await self.fall_back("the avatar did not play the phrase (it left, or never started)")
        await self._own_voice(phrase, frames, cut_after)

    async def fall_back(self, reason: str) -> None:
        """From now on the agent speaks itself, on its own microphone track (published once)."""
        if self.own:
            return
        say("fallback", reason=reason)
        self.gone.set()
        self.own = rtc.AudioSource(SAMPLE_RATE, 1)
        pub = await self.room.local_participant.publish_track(rtc.LocalAudioTrack.create_audio_track("agent-voice", self.own),
                                                              rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
        try:  # the first words must not go out before anyone listens (nobody there yet: go on)
            await asyncio.wait_for(pub.wait_for_subscription(), 5)
        except asyncio.TimeoutError:
            pass

    async def _through_avatar(self, phrase: int, frames: list[rtc.AudioFrame], cut_after: float | None) -> bool:
        """The avatar plays the phrase; False if it does not start in time or leaves before the end."""
        out, gone = self.avatar, asyncio.create_task(self.gone.wait())
        self.started.clear()

        async def feed() -> None:
            for frame in frames:
                await out.capture_frame(frame)
            if cut_after is None:
                out.flush()

        feeding = asyncio.create_task(feed())
        started = asyncio.create_task(self.started.wait())
        try:
            done, _ = await asyncio.wait({started, gone}, timeout=AVATAR_START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
            if started not in done:
                return False
            say("playback_started", phrase=phrase)
            if cut_after is not None:
                await asyncio.sleep(cut_after)
                await feeding
                out.clear_buffer()
                out.flush()
            playout = asyncio.create_task(out.wait_for_playout())
            done, _ = await asyncio.wait({playout, gone}, return_when=asyncio.FIRST_COMPLETED)
            if playout not in done:
                playout.cancel()
                return False
            say("playback_finished", phrase=phrase, playback_position=playout.result().playback_position, interrupted=playout.result().interrupted)
            return True
        finally:
            for task in (gone, started, feeding):
                task.cancel()

    async def _own_voice(self, phrase: int, frames: list[rtc.AudioFrame], cut_after: float | None) -> None:
        """The agent's own track plays the phrase in real time (capture_frame waits while 1 s is queued)."""
        async def feed() -> None:
            for frame in frames:
                await self.own.capture_frame(frame)
            await self.own.wait_for_playout()

        loop = asyncio.get_running_loop()
        feeding, began = asyncio.create_task(feed()), loop.time()
        say("playback_started", phrase=phrase)
        if cut_after is None:
            await feeding
            position, interrupted = round(sum(f.duration for f in frames), 3), False
        else:
            await asyncio.sleep(cut_after)
            feeding.cancel()
            self.own.clear_queue()
            position, interrupted = round(loop.time() - began, 3), True
        say("playback_finished", phrase=phrase, playback_position=position, interrupted=interrupted)


async def main() -> None:
    base = os.environ.get("AVATAR_SESSIONS_URL", "http://127.0.0.1:8080")
    token = os.environ["SESSION_API_TOKEN"]
    room_name, agent = os.environ["ROOM"], os.environ["AGENT_IDENTITY"]
    conversation = os.environ.get("CONVERSATION_ID", room_name)

    # 1. Start (or join) the avatar session and wait until the avatar is in the room. Refused (an error
    #    answer), or not live within the API's wait (202): the agent will speak itself.
    live, refused = None, None
    try:
        started = await asyncio.to_thread(http, "POST", f"{base}/v1/sessions?wait=live", token, {
            "conversationId": conversation,
            "avatar": {"type": "runway-preset", "presetId": "cooking-teacher"},
            "livekit": {"roomName": room_name, "agentIdentity": agent},
            "mode": "direct",
        })
        live = started.get("live")
        refused = None if live else f"the session is not live ({started.get('phase')})"
    except (urllib.error.URLError, OSError) as err:  # an HTTPError is a URLError
        refused = f"the avatar session could not be started: {err}"
    if live:
        say("live", avatar=live["avatarIdentity"], mode=live["mode"])

    # 2. Join the room as the agent (a JobContext gives you this room already connected).
    room = rtc.Room()
    jwt = (api.AccessToken(os.environ["LIVEKIT_API_KEY"], os.environ["LIVEKIT_API_SECRET"])
           .with_identity(agent).with_kind("agent")
           .with_grants(api.VideoGrants(room_join=True, room=room_name)).to_jwt())
    await room.connect(live["livekitUrl"] if live else os.environ["LIVEKIT_URL"], jwt)

    # 3. The agent's voice: the avatar's audio output (what the agent says goes to the avatar, which
    #    speaks it), or the agent's own track when there is no avatar.
    voice = Voice(room, live["avatarIdentity"] if live else None)
    if refused:
        await voice.fall_back(refused)

    # 4. One phrase, played out in full.
    await voice.speak(1, tones((600, 0.4), (900, 0.4), (1200, 0.4)))

    # 5. A long second phrase, interrupted (as when the user barges in).
    await voice.speak(2, tones((300, 20.0)), cut_after=1.0)

    # 6. The conversation is over: end the avatar session (if there is one), leave the room.
    try:
        await asyncio.to_thread(http, "POST", f"{base}/v1/sessions/{conversation}/end", token)
    except urllib.error.HTTPError as err:
        if err.code != 404:
            raise
    await room.disconnect()
    say("ended")


if __name__ == "__main__":
    asyncio.run(main())
