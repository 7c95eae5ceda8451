// The child process behind src/runway-sim/avatar-process.ts: hosts the simulator's rtc-node avatars
// (src/runway-sim/avatar.ts) outside the simulator's process, the way Runway's avatars run on Runway's
// machines and not inside the service that relays or watches them. Commands arrive over Node's IPC
// channel ({op:'start'|'stop'|'event'|'freeze'}); what the avatars see goes back as events. When the
// parent goes away (IPC closed) every avatar leaves its room and the process exits.
import { dispose } from '@livekit/rtc-node';
import { guardRtcHandleErrors } from '../media/rtc-guard';
import { startSimAvatar } from './avatar';
import type { SimAvatar, SimAvatarOptions } from './avatar-api';

export type RunnerCommand =
  | { op: 'start'; id: string; opts: Omit<SimAvatarOptions, 'onPeerJoined' | 'onEndCall' | 'onDisconnected'> }
  | { op: 'stop'; id: string }
  | { op: 'event'; id: string; name: string; args: Record<string, unknown> }
  | { op: 'data'; id: string; msg: Record<string, unknown> }
  | { op: 'freeze'; id: string };

export type RunnerEvent =
  | { ev: 'started'; id: string; identity: string }
  | { ev: 'failed'; id: string; error: string }
  | { ev: 'peer'; id: string; identity: string }
  | { ev: 'end_call'; id: string; from?: string }
  | { ev: 'disconnected'; id: string; reason: string }
  | { ev: 'stats'; id: string; stats: ReturnType<SimAvatar['stats']> }
  | { ev: 'stopped'; id: string };

const send = (e: RunnerEvent) => {
  if (process.connected) process.send!(e);
};
guardRtcHandleErrors();

const avatars = new Map<string, SimAvatar>();
const starting = new Map<string, Promise<SimAvatar | undefined>>();
/** Stop requested while the avatar was still joining. */
const stopEarly = new Set<string>();

async function stop(id: string): Promise<void> {
  const a = avatars.get(id) ?? (await starting.get(id));
  if (!a) {
    stopEarly.add(id);
    return;
  }
  avatars.delete(id);
  send({ ev: 'stats', id, stats: a.stats() });
  await a.stop().catch(() => undefined);
  send({ ev: 'stopped', id });
}

process.on('message', (cmd: RunnerCommand) => {
  if (cmd.op === 'start') {
    const { id } = cmd;
    const p = startSimAvatar({
      ...cmd.opts,
      onPeerJoined: (identity) => send({ ev: 'peer', id, identity }),
      onEndCall: (from) => send({ ev: 'end_call', id, from }),
      onDisconnected: (reason) => {
        avatars.delete(id);
        send({ ev: 'disconnected', id, reason });
      },
    }).then(
      async (a) => {
        starting.delete(id);
        if (stopEarly.delete(id)) {
          await a.stop().catch(() => undefined);
          send({ ev: 'stopped', id });
          return undefined;
        }
        avatars.set(id, a);
        send({ ev: 'started', id, identity: a.identity });
        return a;
      },
      (err: unknown) => {
        starting.delete(id);
        send({ ev: 'failed', id, error: err instanceof Error ? err.message : String(err) });
        return undefined;
      },
    );
    starting.set(id, p);
  } else if (cmd.op === 'stop') void stop(cmd.id);
  else if (cmd.op === 'event')
    void avatars
      .get(cmd.id)
      ?.sendClientEvent(cmd.name, cmd.args)
      .catch(() => undefined);
  else if (cmd.op === 'data')
    void avatars
      .get(cmd.id)
      ?.sendData(cmd.msg)
      .catch(() => undefined);
  else if (cmd.op === 'freeze') avatars.get(cmd.id)?.freezeVideo();
});

// Stats for the parent's synchronous stats() (cheap: a few numbers per avatar).
setInterval(() => {
  for (const [id, a] of avatars) send({ ev: 'stats', id, stats: a.stats() });
}, 500).unref();

process.on('disconnect', () => {
  void (async () => {
    await Promise.allSettled([...avatars.keys(), ...starting.keys()].map((id) => stop(id)));
    await dispose().catch(() => undefined);
    process.exit(0);
  })();
});
