// The reaper's activities: find Runway sessions this service created that no open session workflow
// owns (an owner terminated or lost, or a create whose answer was lost), and end them.
import { activityInfo, heartbeat } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import type { RunwayClient } from '../src/runway/client';
import { FlagsKey, RunwaySessionIdsKey, SESSION_WORKFLOW_TYPE, stateQuery } from '../workflows/shared';
import type { AvatarSpec, SessionState } from '../workflows/types';
import { asFailure } from './failures';

export interface ReaperDeps {
  runway: RunwayClient;
  /** A Temporal client for visibility lookups and state queries. */
  temporal: () => Client;
}

export interface Orphan {
  runwaySessionId: string;
  reason: 'owner_closed' | 'ambiguous_create';
  owner?: string;
  createdAt: string;
}

export interface OrphanScan {
  inProgress: number;
  owned: number;
  notOurs: number;
  tooYoung: number;
  orphans: Orphan[];
}

function sameAvatar(spec: AvatarSpec, conv: { avatar?: unknown }): boolean {
  const a = conv.avatar as { type?: string; presetId?: string; id?: string | null } | null | undefined;
  if (!a) return false;
  if (spec.type === 'runway-preset') return a.type === 'runway-preset' && a.presetId === spec.presetId;
  return a.type === 'custom' && a.id === spec.avatarId;
}

/** How far Runway's clock may be from ours when an ambiguous create's window is matched. */
export const CLOCK_MARGIN_MS = 10_000;

export function createReaperActivities(deps: ReaperDeps) {
  return {
    /**
     * Lists Runway conversations in progress and classifies each: owned by a running session workflow,
     * orphaned (its owner is closed, or it matches an ambiguous create of ours), or not ours (left alone).
     * Sessions younger than `graceSeconds` are skipped: their workflow may not have recorded them yet.
     */
    async findOrphanedRunwaySessions(req: { graceSeconds: number; lookbackHours: number }): Promise<OrphanScan> {
      const client = deps.temporal();
      const scan: OrphanScan = { inProgress: 0, owned: 0, notOurs: 0, tooYoung: 0, orphans: [] };
      const since = new Date(Date.now() - req.lookbackHours * 3600_000);
      // Ambiguous creates of our workflows (open or closed) in the lookback window.
      let ambiguous: { workflowId: string; from: number; to: number; avatar: AvatarSpec; running: boolean }[] | undefined;
      const loadAmbiguous = async () => {
        if (ambiguous) return ambiguous;
        ambiguous = [];
        const query = `WorkflowType = '${SESSION_WORKFLOW_TYPE}' AND ${FlagsKey.name} = 'ambiguous_create' AND StartTime > '${since.toISOString()}'`;
        for await (const wf of client.workflow.list({ query })) {
          const state = await client.workflow
            .getHandle(wf.workflowId, wf.runId)
            .query(stateQuery)
            .catch(() => undefined as SessionState | undefined);
          for (const a of state?.ambiguousCreates ?? []) {
            // Between the send and the failure, with a margin for the clocks (Runway's, ours); a record
            // without an end (written before it was kept) is matched around its time.
            const at = Date.parse(a.at);
            const window = a.until ? { from: at - CLOCK_MARGIN_MS, to: Date.parse(a.until) + CLOCK_MARGIN_MS } : { from: at - 60_000, to: at + 60_000 };
            ambiguous.push({ workflowId: wf.workflowId, ...window, avatar: a.avatar, running: wf.status.name === 'RUNNING' });
          }
        }
        return ambiguous;
      };

      try {
        for await (const conv of deps.runway.iterateConversations({ startDate: since.toISOString() })) {
          heartbeat();
          const c = conv as { id: string; status: string; createdAt: string; avatar?: unknown };
          if (c.status !== 'in_progress') continue;
          scan.inProgress++;
          const createdAt = Date.parse(c.createdAt);
          if (Date.now() - createdAt < req.graceSeconds * 1000) {
            scan.tooYoung++;
            continue;
          }
          const owners = [];
          for await (const wf of client.workflow.list({ query: `WorkflowType = '${SESSION_WORKFLOW_TYPE}' AND ${RunwaySessionIdsKey.name} = '${c.id}'` }))
            owners.push(wf);
          if (owners.some((o) => o.status.name === 'RUNNING')) {
            scan.owned++;
            continue;
          }
          if (owners.length) {
            scan.orphans.push({ runwaySessionId: c.id, reason: 'owner_closed', owner: owners[0]!.workflowId, createdAt: c.createdAt });
            continue;
          }
          // Not recorded anywhere: ours only if it matches an ambiguous create (same avatar, created around then).
          const match = (await loadAmbiguous()).find((a) => sameAvatar(a.avatar, c) && createdAt >= a.from && createdAt <= a.to);
          if (match) scan.orphans.push({ runwaySessionId: c.id, reason: 'ambiguous_create', owner: match.workflowId, createdAt: c.createdAt });
          else scan.notOurs++;
        }
      } catch (err) {
        asFailure(err);
      }
      void activityInfo;
      return scan;
    },
  };
}
