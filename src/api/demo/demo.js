// The demo page: start an avatar session, follow its phases, watch and hear the avatar in the
// customer's LiveKit room with a subscribe-only viewer token, end the session. No framework.
// In direct mode "Say something" speaks to the avatar as a LiveKit agent would (LiveKit's data-stream
// avatar protocol): a short phrase (a tone melody standing in for TTS) as a byte stream on
// lk.audio_stream, then the avatar's lk.playback_started / lk.playback_finished RPCs come back.
// The API token (token mode) lives in sessionStorage and goes in the Authorization header only.
'use strict';
(() => {
  const { Room, RoomEvent, Track } = window.LivekitClient;
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = 'avatar-demo.api-token';
  const TERMINAL = ['completed', 'failed'];
  const POLL_MS = 700;

  let config;
  let conversationId;
  let pollTimer;
  let room;
  let audioCtx;
  let analyser;
  let levelTimer;
  const media = { video: 'none', audio: 'none', level: 0 };
  /** The page's stand-in agent (direct mode): its room connection and what the avatar reported. */
  let agent;
  const speech = { state: 'idle', playback: undefined };
  let liveMode;

  const token = () => sessionStorage.getItem(TOKEN_KEY);

  function showError(message) {
    $('error').textContent = message ?? '';
    $('error').hidden = !message;
  }

  class ApiError extends Error {
    constructor(status, body) {
      super(body?.error?.message ?? `HTTP ${status}`);
      this.status = status;
      this.code = body?.error?.code;
    }
  }

  async function api(method, path, body) {
    const headers = {};
    if (config.auth === 'token') headers.authorization = `Bearer ${token() ?? ''}`;
    else headers[config.tokenHeader] = '1';
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
    const data = await res.json().catch(() => undefined);
    if (res.status === 401 && config.auth === 'token') {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin('That token was refused (401). Enter SESSION_API_TOKEN.');
    }
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
  }

  function showLogin(message) {
    $('login').hidden = false;
    $('controls').hidden = true;
    $('forget').hidden = true;
    showError(message);
  }

  function showControls() {
    $('login').hidden = true;
    $('controls').hidden = false;
    $('forget').hidden = config.auth !== 'token';
  }

  // ---- phases ----------------------------------------------------------------------------------
  function render(state) {
    $('phase').textContent = state.phase;
    document.body.dataset.phase = state.phase;
    $('bridge-mode').textContent = state.mode ?? state.requestedMode ?? '–';
    $('end-reason').textContent = state.endReason ? `ended: ${state.endReason}` : '';
    const list = $('phases');
    list.replaceChildren();
    const times = Object.entries(state.phaseTimes ?? {}).sort((a, b) => a[1].localeCompare(b[1]));
    const t0 = times.length ? Date.parse(times[0][1]) : 0;
    for (const [phase, at] of times) {
      const li = document.createElement('li');
      li.textContent = `${phase} +${((Date.parse(at) - t0) / 1000).toFixed(1)} s`;
      if (phase === state.phase) li.className = phase === 'failed' ? 'failed' : 'current';
      list.append(li);
    }
    if (state.error) showError(`${state.error.code}: ${state.error.message}`);
  }

  async function poll() {
    pollTimer = undefined;
    const id = conversationId;
    try {
      const state = await api('GET', `/v1/sessions/${encodeURIComponent(id)}`);
      if (id !== conversationId) return;
      render(state);
      liveMode = state.phase === 'live' ? state.mode : undefined;
      $('say').disabled = liveMode !== 'direct' || speech.state === 'sending' || speech.state === 'speaking';
      if (state.phase === 'live' && !room) await watch(id);
      if (TERMINAL.includes(state.phase)) return finished();
    } catch (err) {
      if (err.status !== 404) showError(err.message); // 404: the workflow is not visible yet
      if (err.status === 401) return finished();
    }
    if (id === conversationId) pollTimer = setTimeout(poll, POLL_MS);
  }

  function finished() {
    clearTimeout(pollTimer);
    pollTimer = undefined;
    void unwatch();
    $('start').disabled = false;
    $('end').disabled = true;
  }

  // ---- the customer's room ---------------------------------------------------------------------
  async function watch(id) {
    const { url, token: viewerToken, roomName } = await api('POST', `/v1/sessions/${encodeURIComponent(id)}/viewer-token`);
    if (id !== conversationId) return;
    room = new Room({ adaptiveStream: false, dynacast: false });
    room.on(RoomEvent.TrackSubscribed, (track) => {
      if (track.kind === Track.Kind.Video) {
        const v = $('video');
        v.onplaying = () => setMedia('video', 'playing');
        track.attach(v);
        setMedia('video', 'subscribed');
      } else if (track.kind === Track.Kind.Audio) {
        track.attach($('audio'));
        setMedia('audio', 'subscribed');
        listen(track.mediaStreamTrack);
      }
    });
    room.on(RoomEvent.TrackUnsubscribed, (track) => {
      track.detach();
      setMedia(track.kind === Track.Kind.Video ? 'video' : 'audio', 'none');
    });
    room.on(RoomEvent.Disconnected, () => {
      setMedia('video', 'none');
      setMedia('audio', 'none');
    });
    $('room').textContent = roomName;
    try {
      await room.connect(url, viewerToken, { autoSubscribe: true });
    } catch (err) {
      room = undefined; // the next poll tries again with a fresh token
      throw new Error(`could not join the room: ${err.message}`, { cause: err });
    }
  }

  async function unwatch() {
    clearInterval(levelTimer);
    const r = room;
    room = undefined;
    const a = agent;
    agent = undefined;
    liveMode = undefined;
    $('say').disabled = true;
    if (a) await a.room.disconnect();
    analyser = undefined;
    media.level = 0;
    $('level').value = 0;
    if (r) await r.disconnect();
  }

  function setMedia(kind, state) {
    media[kind] = state;
    $(`${kind}-state`).textContent = state;
  }

  /** A level meter on the avatar's audio (and proof, for the test, that samples arrive). */
  function listen(mediaStreamTrack) {
    audioCtx ??= new AudioContext();
    void audioCtx.resume();
    const source = audioCtx.createMediaStreamSource(new MediaStream([mediaStreamTrack]));
    analyser = audioCtx.createAnalyser();
    analyser.fftSize = 2048;
    source.connect(analyser);
    const buf = new Float32Array(analyser.fftSize);
    clearInterval(levelTimer);
    levelTimer = setInterval(() => {
      if (!analyser) return;
      analyser.getFloatTimeDomainData(buf);
      let sum = 0;
      for (const x of buf) sum += x * x;
      media.level = Math.sqrt(sum / buf.length);
      $('level').value = media.level;
      const el = $('audio');
      setMedia('audio', !el.paused && media.level > 0.01 ? 'playing' : 'subscribed');
    }, 200);
  }

  // ---- say something (direct mode): the page speaks to the avatar as the customer's agent -------
  const SAY_RATE = 24000;
  const MELODY = [
    [523, 0.5],
    [659, 0.5],
    [784, 0.5],
    [1047, 0.7],
  ]; // C E G C: stand-in TTS, 2.2 s

  function setSpeech(state, playback) {
    speech.state = state;
    if (playback !== undefined) speech.playback = playback;
    const p = speech.playback;
    $('speech').textContent = state === 'finished' && p ? `played ${p.playback_position.toFixed(2)} s${p.interrupted ? ' (interrupted)' : ''}` : state;
    document.body.dataset.speech = state;
    $('say').disabled = liveMode !== 'direct' || state === 'sending' || state === 'speaking';
  }

  /** 16-bit little-endian mono PCM of the melody. */
  function melody() {
    const total = MELODY.reduce((n, [, s]) => n + Math.round(s * SAY_RATE), 0);
    const pcm = new Int16Array(total);
    let at = 0;
    for (const [hz, s] of MELODY) {
      const n = Math.round(s * SAY_RATE);
      for (let i = 0; i < n; i++) {
        const fade = Math.min(1, i / 240, (n - i) / 240); // no clicks between notes
        pcm[at + i] = Math.round(9000 * fade * Math.sin((2 * Math.PI * hz * i) / SAY_RATE));
      }
      at += n;
    }
    return new Uint8Array(pcm.buffer);
  }

  async function agentRoom(id) {
    if (agent && agent.id === id) return agent;
    const info = await api('POST', `/v1/sessions/${encodeURIComponent(id)}/demo-agent-token`);
    const r = new Room({ adaptiveStream: false, dynacast: false });
    // The avatar reports back to the sender over RPC (payload: {"playback_position": s, "interrupted": bool}).
    r.registerRpcMethod('lk.playback_started', async () => {
      setSpeech('speaking');
      return 'ok';
    });
    r.registerRpcMethod('lk.playback_finished', async (data) => {
      setSpeech('finished', JSON.parse(data.payload));
      return 'ok';
    });
    await r.connect(info.url, info.token, { autoSubscribe: false });
    agent = { id, room: r, avatarIdentity: info.avatarIdentity };
    return agent;
  }

  async function say() {
    const id = conversationId;
    showError();
    setSpeech('sending');
    try {
      const a = await agentRoom(id);
      const writer = await a.room.localParticipant.streamBytes({
        name: `AUDIO_${Date.now().toString(36)}`,
        topic: 'lk.audio_stream',
        destinationIdentities: [a.avatarIdentity],
        attributes: { sample_rate: String(SAY_RATE), num_channels: '1' },
      });
      const bytes = melody();
      for (let off = 0; off < bytes.length; off += 9600) await writer.write(bytes.subarray(off, off + 9600)); // 200 ms chunks
      await writer.close(); // the end of the stream ends the segment
    } catch (err) {
      setSpeech('idle');
      showError(`say something failed: ${err.message}`);
    }
  }

  // ---- controls --------------------------------------------------------------------------------
  async function start(event) {
    event.preventDefault();
    showError();
    // A user gesture: audio may start now.
    audioCtx ??= new AudioContext();
    void audioCtx.resume();
    await unwatch();
    const id = `demo-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    conversationId = id;
    $('conversation').textContent = id;
    $('phases').replaceChildren();
    $('start').disabled = true;
    try {
      setSpeech('idle', null);
      await api('POST', '/v1/sessions', {
        conversationId: id,
        avatar: { type: 'runway-preset', presetId: $('preset').value },
        // The agent the avatar speaks for: in direct mode, the page itself ("Say something").
        livekit: { roomName: `demo-room-${id}`, agentIdentity: `demo-agent-${id}` },
        mode: $('mode').value,
      });
      $('end').disabled = false;
      void poll();
    } catch (err) {
      showError(`start failed: ${err.message}`);
      $('start').disabled = false;
    }
  }

  async function end() {
    if (!conversationId) return;
    $('end').disabled = true;
    try {
      await api('POST', `/v1/sessions/${encodeURIComponent(conversationId)}/end`);
    } catch (err) {
      showError(`end failed: ${err.message}`);
      $('end').disabled = false;
    }
  }

  async function login(event) {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $('token').value.trim());
    $('token').value = '';
    try {
      await api('GET', '/v1/sessions?limit=1');
      showError();
      showControls();
    } catch (err) {
      if (err.status !== 401) showError(err.message);
    }
  }

  async function init() {
    config = await (await fetch('config.json', { cache: 'no-store' })).json();
    for (const p of config.presets) $('preset').append(new Option(p, p, p === 'cooking-teacher', p === 'cooking-teacher'));
    for (const m of config.modes) $('mode').append(new Option(m, m));
    $('start-form').addEventListener('submit', (e) => void start(e));
    $('end').addEventListener('click', () => void end());
    $('say').addEventListener('click', () => void say());
    $('login-form').addEventListener('submit', (e) => void login(e));
    $('forget').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin();
    });
    if (config.auth === 'token' && !token()) showLogin();
    else showControls();
    document.body.dataset.ready = 'true';
  }

  // For tests and curious developers: what the page sees right now.
  window.avatarDemo = {
    state: () => ({
      conversationId,
      phase: document.body.dataset.phase,
      ...media,
      roomConnected: room?.state === 'connected',
      speech: speech.state,
      playback: speech.playback ?? null,
    }),
  };
  init().catch((err) => showError(`the page could not start: ${err.message}`));
})();
