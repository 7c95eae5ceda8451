"""A LiveKit agent (LiveKit Agents for Python) that speaks through the Runway avatar in direct mode.

It starts (or joins) the avatar session over the HTTP API and waits until it is live, joins the room
as the agent, streams a phrase to the avatar with DataStreamAudioOutput (LiveKit's data-stream avatar
protocol: `lk.audio_stream`, `lk.playback_started`, `lk.playback_finished`, `lk.clear_buffer`), waits
until the avatar has played it out, starts a second phrase and interrupts it, then ends the session.
The "phrases" are tone sequences standing in for your TTS. With an AgentSession, the same output is
`session.output.audio = DataStreamAudioOutput(...)` and the session calls it for you.

Run it with the Python that `npm run setup` prepares (`.tools/agents/bin/python examples/agent.py`);
test/livekit-agent.test.ts runs this very file against `npm start`'s stack; the README shows an excerpt.
Environment: AVATAR_SESSIONS_URL (http://127.0.0.1:8080), SESSION_API_TOKEN, LIVEKIT_API_KEY and
LIVEKIT_API_SECRET (to mint the agent's own token), ROOM, AGENT_IDENTITY, CONVERSATION_ID (default ROOM).
Prints one JSON line per event.
"""

import asyncio
import json
import os
import urllib.request

import numpy as np
from livekit import api, rtc
from livekit.agents.voice.avatar import DataStreamAudioOutput

SAMPLE_RATE = 24000  # a typical TTS rate; the avatar resamples
FRAME = SAMPLE_RATE // 50  # 20 ms frames


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


async def main() -> None:
    base = os.environ.get("AVATAR_SESSIONS_URL", "http://127.0.0.1:8080")
    token = os.environ["SESSION_API_TOKEN"]
    room_name, agent = os.environ["ROOM"], os.environ["AGENT_IDENTITY"]
    conversation = os.environ.get("CONVERSATION_ID", room_name)

    # 1. Start (or join) the avatar session and wait until the avatar is in the room.
    started = await asyncio.to_thread(http, "POST", f"{base}/v1/sessions?wait=live", token, {
        "conversationId": conversation,
        "avatar": {"type": "runway-preset", "presetId": "cooking-teacher"},
        "livekit": {"roomName": room_name, "agentIdentity": agent},
        "mode": "direct",
    })
    live = started["live"]
    say("live", avatar=live["avatarIdentity"], mode=live["mode"])

    # 2. Join the room as the agent (a JobContext gives you this room already connected).
    room = rtc.Room()
    jwt = (api.AccessToken(os.environ["LIVEKIT_API_KEY"], os.environ["LIVEKIT_API_SECRET"])
           .with_identity(agent).with_kind("agent")
           .with_grants(api.VideoGrants(room_join=True, room=room_name)).to_jwt())
    await room.connect(live["livekitUrl"], jwt)

    # 3. The avatar's audio output: what the agent says goes to the avatar, which speaks it.
    audio = DataStreamAudioOutput(room, destination_identity=live["avatarIdentity"],
                                  wait_remote_track=rtc.TrackKind.KIND_VIDEO, wait_playback_start=True)
    started_ev = asyncio.Event()
    audio.on("playback_started", lambda _ev: started_ev.set())

    # 4. One phrase, played out in full.
    for frame in tones((600, 0.4), (900, 0.4), (1200, 0.4)):
        await audio.capture_frame(frame)
    audio.flush()
    await started_ev.wait()
    say("playback_started", phrase=1)
    done = await audio.wait_for_playout()
    say("playback_finished", phrase=1, playback_position=done.playback_position, interrupted=done.interrupted)

    # 5. A long second phrase, interrupted (as when the user barges in).
    started_ev.clear()
    for frame in tones((300, 20.0)):
        await audio.capture_frame(frame)
    await started_ev.wait()
    say("playback_started", phrase=2)
    await asyncio.sleep(1.0)
    audio.clear_buffer()
    audio.flush()
    done = await audio.wait_for_playout()
    say("playback_finished", phrase=2, playback_position=done.playback_position, interrupted=done.interrupted)

    # 6. The conversation is over: end the avatar session, leave the room.
    await asyncio.to_thread(http, "POST", f"{base}/v1/sessions/{conversation}/end", token)
    await room.disconnect()
    say("ended")


if __name__ == "__main__":
    asyncio.run(main())
