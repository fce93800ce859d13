#!/usr/bin/env bash
# test_dicom_pacs.sh - the PACS round trip with a real Orthanc (Debian
# `orthanc`), started here on loopback with its own configuration in a
# temporary folder: an image is uploaded to Orthanc and sent by Orthanc to
# the node's Storage SCP (`sldd serve --dicom-listen`); the node detects
# and stores its heat map (Secondary Capture) and report (TID 1500 SR)
# back into Orthanc, where both must appear under the source's study
# (Orthanc's REST API) and pass dciodvfy without errors.  The node is
# stopped between receive and send (the PACS is unreachable at first) and
# restarted: nothing is lost.  A calling AE title not on the allow-list is
# refused, and one past the bounded queue is answered 0xA700 and not kept;
# no log line or audit entry holds an attribute value.
# Exits 77 when Orthanc, curl or storescu is missing.
#
# usage: test_dicom_pacs.sh /path/to/sldd /path/to/dicom_gen_tool
set -u
SLDD=${1:?usage: $0 SLDD GEN}
GEN=${2:?usage: $0 SLDD GEN}
PY=/usr/bin/python3
ORTHANC=$(command -v Orthanc || echo /usr/sbin/Orthanc)
for t in "$ORTHANC" curl storescu; do
  command -v "$t" >/dev/null || { echo "skipped: $t not installed"; exit 77; }
done
T=$(mktemp -d "${TMPDIR:-/tmp}/sldd-dicom-pacs-XXXXXX")
OPID=
NPID=
cleanup() {
  [ -n "$NPID" ] && kill "$NPID" 2>/dev/null && wait "$NPID" 2>/dev/null
  [ -n "$OPID" ] && kill "$OPID" 2>/dev/null && wait "$OPID" 2>/dev/null
  [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
export OPENBLAS_NUM_THREADS=1
. "$(dirname "$0")/../node/cli_lib.sh"

read -r HTTP DIMSE NODEP PEERP CLOSED < <("$PY" - <<'PYEOF'
import socket
ss = [socket.socket() for _ in range(5)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
PYEOF
)
# wait_for SECONDS COMMAND...: poll every 0.2 s
wait_for() {
  local n=$(( $1 * 5 )); shift
  while [ $n -gt 0 ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; n=$((n - 1)); done
  return 1
}
api() { curl -sf "http://127.0.0.1:$HTTP$1" "${@:2}"; }

# ---- Orthanc ----
mkdir -p "$T/orthanc"
cat >"$T/orthanc/orthanc.json" <<JSON
{ "Name": "sldd-test", "StorageDirectory": "$T/orthanc/db", "IndexDirectory": "$T/orthanc/db",
  "HttpPort": $HTTP, "DicomPort": $DIMSE, "DicomAet": "ORTHANC", "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false, "DicomCheckCalledAet": false, "Plugins": [],
  "DicomModalities": { "sldd": [ "SLDDNODE", "127.0.0.1", $NODEP ] } }
JSON
"$ORTHANC" "$T/orthanc/orthanc.json" >"$T/orthanc/log.txt" 2>&1 &
OPID=$!
check "Orthanc answers" wait_for 20 api /system

# ---- a model on a 0.2 mm grid and a source image ----
S=$T/synth
"$SLDD" dataset synth --out "$S" --count 8 --size 96 --seed 5 --split-fractions 0.5,0.25,0.25 >/dev/null 2>&1
"$SLDD" dataset prepare --data "$S" --patch 24 --stride 12 --patch-resize 12 >/dev/null 2>&1
"$SLDD" distill --data "$S" --out "$T/dist" --arch convnet-bn --width 4 --images-per-step 3 \
  --iterations 2 --real-batch 16 --eval-every 0 --checkpoint-every 0 --quiet >/dev/null 2>&1
STUDY=1.2.826.0.1.3680043.8.498.5150.1
"$GEN" --png "$S/images/synth0003.png" --out "$T/src.dcm" --spacing 0.2 --xfer jpeg-ls \
  --patient-name "ZZPACSNAME^Q" --patient-id ZZPACSID77 --institution "ZZPACSINST" \
  --accession ZZPACSACC --study-uid $STUDY --sop-uid 1.2.826.0.1.3680043.8.498.5150.2

# ---- the node ----
N=$T/node
"$SLDD" init --dir "$N" --id node-a --tls --ca-dir "$T/ca" --listen "127.0.0.1:$PEERP" >/dev/null 2>&1
serve() { # serve LOG PACSPORT [OPTIONS...]
  "$SLDD" serve --dir "$N" --log "$1" --dicom-listen "127.0.0.1:$NODEP" --dicom-ae SLDDNODE \
    --dicom-allow ORTHANC,STORESCU --dicom-pacs "127.0.0.1:$2:ORTHANC" --dicom-model "$T/dist/payload.pb" "${@:3}" &
  NPID=$!
  wait_for 30 grep -q "DICOM: Storage SCP 'SLDDNODE'" "$1"
}
check "node starts with its Storage SCP (PACS unreachable, queue of 1)" serve "$T/log1.txt" "$CLOSED" --dicom-queue 1

ID=$(api /instances -X POST --data-binary @"$T/src.dcm" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["ID"])')
check "source uploaded to Orthanc" test -n "$ID"
check "Orthanc sends it to the node (C-STORE answered)" api /modalities/sldd/store -X POST -d "\"$ID\"" -o /dev/null
check "persisted in the inbox" bash -c "ls '$N/dicom/inbox/'*.dcm >/dev/null"
check "detected, results waiting in the outbox" wait_for 30 bash -c "ls '$N/dicom/outbox/'*/report-sr.dcm >/dev/null"
check "send to the unreachable PACS failed and is kept" wait_for 10 grep -q "not sent (kept; will retry)" "$T/log1.txt"

# refused caller
storescu -aet INTRUDER -aec SLDDNODE 127.0.0.1 "$NODEP" "$T/src.dcm" >/dev/null 2>&1
check "INTRUDER refused" wait_for 5 grep -q "association from AE 'INTRUDER' refused" "$T/log1.txt"

# the queue holds one object (its results wait for the PACS): a second is refused, not kept
storescu -xt -aet STORESCU -aec SLDDNODE 127.0.0.1 "$NODEP" "$T/src.dcm" >/dev/null 2>&1
check "second object refused with 0xA700 (queue full)" wait_for 5 grep -q "queue full (1 objects); object refused" "$T/log1.txt"
check "only one object in the inbox" test "$(ls "$N/dicom/inbox/" | grep -c '\.dcm$')" = 1

kill -TERM "$NPID"; wait "$NPID"; NPID=
check "results still in the outbox after the stop" bash -c "ls '$N/dicom/outbox/'*/heatmap-sc.dcm >/dev/null"

# ---- restart with the PACS reachable ----
check "node restarts" serve "$T/log2.txt" "$DIMSE"
count() { api "/instances" | "$PY" -c 'import json,sys; sys.exit(0 if len(json.load(sys.stdin)) >= 3 else 1)'; }
check "SC and SR arrive in Orthanc" wait_for 30 count
check "the inbox is empty once sent" wait_for 10 bash -c "! ls '$N/dicom/inbox/'*.dcm 2>/dev/null"
check "sent once (not detected again)" bash -c "! grep -q 'DICOM: rx-' '$T/log2.txt'"
"$PY" - "$HTTP" "$STUDY" "$T" <<'PYEOF' >"$T/check.txt" 2>&1
import json, sys, urllib.request
http, study, t = sys.argv[1:4]
def get(p):
    return urllib.request.urlopen(f"http://127.0.0.1:{http}{p}").read()
classes = {}
for i in json.loads(get("/instances")):
    tags = json.loads(get(f"/instances/{i}/simplified-tags"))
    assert tags["StudyInstanceUID"] == study, ("study", tags["StudyInstanceUID"])
    classes[tags["SOPClassUID"]] = i
sc, sr = "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.88.33"
assert sc in classes and sr in classes, classes
open(f"{t}/sc.dcm", "wb").write(get(f"/instances/{classes[sc]}/file"))
open(f"{t}/sr.dcm", "wb").write(get(f"/instances/{classes[sr]}/file"))
studies = json.loads(get("/studies"))
assert len(studies) == 1, studies
print("ok")
PYEOF
check "all three under the source's study in Orthanc ($(tail -1 "$T/check.txt"))" grep -qx ok "$T/check.txt"
if command -v dciodvfy >/dev/null; then
  for f in sc sr; do
    check "dciodvfy: no error in the $f from Orthanc" bash -c "! dciodvfy '$T/$f.dcm' 2>&1 | grep -q '^Error'"
  done
fi
check "the SR holds the decision" bash -c "dsrdump '$T/sr.dcm' | grep -q 'Detection decision'"
"$SLDD" audit show --dir "$N" >"$T/audit.txt" 2>&1
check "detection audited" grep -q "rx-" "$T/audit.txt"
for s in ZZPACSNAME ZZPACSID77 ZZPACSINST ZZPACSACC 3680043.8.498.5150; do
  check "no log line or audit entry holds $s" bash -c "! grep -qa '$s' '$T/log1.txt' '$T/log2.txt' '$T/audit.txt'"
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
