#!/bin/sh
# One-shot (the `temporal-setup` service of docker-compose.yml, image temporalio/admin-tools): once
# the Temporal server answers, creates the namespace this service uses and registers its search
# attributes (workflows/shared.ts, SEARCH_ATTRIBUTES). Safe to run again: what exists is kept.
# The workers and the API start only after this exits 0.
set -eu

ADDRESS="${TEMPORAL_ADDRESS:-temporal:7233}"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
RETENTION="${TEMPORAL_NAMESPACE_RETENTION:-72h}"

echo "waiting for Temporal at $ADDRESS"
i=0
until temporal operator cluster health --address "$ADDRESS" >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -ge 60 ]; then echo "Temporal did not become healthy" >&2; exit 1; fi
  sleep 2
done

if temporal operator namespace describe --address "$ADDRESS" -n "$NAMESPACE" >/dev/null 2>&1; then
  echo "namespace $NAMESPACE exists"
else
  temporal operator namespace create --address "$ADDRESS" -n "$NAMESPACE" --retention "$RETENTION"
  echo "namespace $NAMESPACE created (retention $RETENTION)"
fi

# A new namespace reaches the server's namespace cache after a few seconds: wait until it answers.
i=0
until temporal operator search-attribute list --address "$ADDRESS" -n "$NAMESPACE" >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -ge 60 ]; then echo "namespace $NAMESPACE did not become usable" >&2; exit 1; fi
  sleep 1
done

# name:type, as workflows/shared.ts defines them
for attr in \
  AvatarPhase:Keyword \
  AvatarMode:Keyword \
  RunwaySessionId:Keyword \
  LiveKitRoom:Keyword \
  ConversationId:Keyword \
  AvatarEndReason:Keyword \
  RunwaySessionIds:KeywordList \
  AvatarFlags:KeywordList \
  RunwayBilledSeconds:Int
do
  name="${attr%%:*}"
  type="${attr##*:}"
  if temporal operator search-attribute list --address "$ADDRESS" -n "$NAMESPACE" | grep -qw "$name"; then
    echo "search attribute $name exists"
  else
    temporal operator search-attribute create --address "$ADDRESS" -n "$NAMESPACE" --name "$name" --type "$type"
    echo "search attribute $name ($type) created"
  fi
done
