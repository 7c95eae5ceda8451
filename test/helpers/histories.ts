// Records a finished workflow's history for the replay test when RECORD_HISTORIES=1. Histories are
// stored as the protobuf encoding (base64), the form the server itself returns, so nothing is lost
// in a JSON round trip.
import { writeFileSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import type { Client } from '@temporalio/client';

export const HISTORY_DIR = path.join(__dirname, '..', 'histories');

export async function recordHistory(client: Client, workflowId: string, name: string, runId?: string): Promise<void> {
  if (process.env.RECORD_HISTORIES !== '1') return;
  mkdirSync(HISTORY_DIR, { recursive: true });
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  const bytes = temporal.api.history.v1.History.encode(history).finish();
  const file = `${name.replace(/[^A-Za-z0-9_-]+/g, '-').replace(/-+$/, '')}.history.b64`;
  writeFileSync(path.join(HISTORY_DIR, file), Buffer.from(bytes).toString('base64') + '\n');
}

export function loadHistories(): { workflowId: string; history: temporal.api.history.v1.IHistory }[] {
  return readdirSync(HISTORY_DIR)
    .filter((f) => f.endsWith('.history.b64'))
    .sort()
    .map((f) => ({
      workflowId: f.replace(/\.history\.b64$/, ''),
      history: temporal.api.history.v1.History.decode(Buffer.from(readFileSync(path.join(HISTORY_DIR, f), 'utf8').trim(), 'base64')),
    }));
}
