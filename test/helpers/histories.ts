// Records a finished workflow's history for the replay test when RECORD_HISTORIES=1.
import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { Client } from '@temporalio/client';

export async function recordHistory(client: Client, workflowId: string, name: string): Promise<void> {
  if (process.env.RECORD_HISTORIES !== '1') return;
  const dir = path.join(__dirname, '..', 'histories');
  mkdirSync(dir, { recursive: true });
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  writeFileSync(path.join(dir, `${name.replace(/[^A-Za-z0-9_-]+/g, '-').replace(/-+$/, '')}.json`), historyToJSON(history));
}
