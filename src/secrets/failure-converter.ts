// Loaded by path (workers and the workflow bundle need it as a module): failure messages and stack
// traces go through the payload codec too, so an error that quotes customer text stays encrypted.
import { DefaultFailureConverter } from '@temporalio/common';

export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
