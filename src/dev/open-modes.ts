// When `npm start`'s embedded stack may serve anything without a token: only when every piece is its
// own (a Temporal dev server, LiveKit dev servers and the Runway simulator, all on loopback), so that a
// token-less request can never reach a real Runway account, a customer's LiveKit or a shared Temporal.
// Then the demo page's API calls (without SESSION_API_TOKEN) and the codec for the embedded Temporal
// UI (without SESSION_CODEC_TOKEN) are open to direct requests from this machine.
export interface OpenModes {
  /** Temporal, LiveKit and Runway are all the stack's own. */
  fullyEmbedded: boolean;
  /** The demo page's same-origin requests from a loopback browser need no API token. */
  demoOpen: boolean;
  /** /codec answers direct loopback requests without a token (the embedded UI cannot send one). */
  codecOpen: boolean;
}

export function embeddedOpenModes(env: {
  TEMPORAL_ADDRESS?: string;
  LIVEKIT_URL?: string;
  RUNWAYML_API_SECRET?: string;
  SESSION_API_TOKEN?: string;
  SESSION_CODEC_TOKEN?: string;
}): OpenModes {
  const fullyEmbedded = !env.TEMPORAL_ADDRESS && !env.LIVEKIT_URL && !env.RUNWAYML_API_SECRET;
  return { fullyEmbedded, demoOpen: fullyEmbedded && !env.SESSION_API_TOKEN, codecOpen: fullyEmbedded && !env.SESSION_CODEC_TOKEN };
}
