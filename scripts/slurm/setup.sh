#!/usr/bin/env bash
# A single-node Slurm on localhost for the Slurm-executor test: installs Debian's slurm-wlm and
# munge (root/apt), writes a minimal slurm.conf (no cgroups, no accounting daemon), starts
# munged, slurmctld and slurmd, and waits until `sinfo` shows the node idle. Idempotent.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  echo "installing slurm-wlm and munge (Debian packages, one-time) ..." >&2
  # tests may set up several Debian packages at once: one apt at a time
  exec 8>/tmp/rass-apt.lock; flock 8
  apt-get update -q >&2
  apt-get install -y -q -o DPkg::Lock::Timeout=300 slurm-wlm munge >&2
  flock -u 8
fi
host=$(hostname -s)
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 - 1024 ))
conf=/etc/slurm/slurm.conf
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
want=$(cat <<CONF
# written by rass scripts/slurm/setup.sh: single-node test cluster
ClusterName=rass-test
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
MinJobAge=600
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
)
if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$want" ]; then echo "$want" > "$conf"; fi
if [ ! -s /etc/munge/munge.key ]; then
  (mungekey --create --force 2>/dev/null || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null)
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key
pgrep -x munged >/dev/null || su -s /bin/sh munge -c '/usr/sbin/munged' || /usr/sbin/munged --force
pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd
deadline=$((SECONDS + 90))
while [ "$SECONDS" -lt "$deadline" ]; do
  state=$(timeout 5 sinfo -h -N -o '%T' 2>/dev/null | head -1 || true)
  case "$state" in idle*|mix*|alloc*) echo "slurm ready: node $host $state"; exit 0;; esac
  if [ "$state" = "down" ] || [ "$state" = "drained" ] || [ "$state" = "down*" ]; then scontrol update nodename="$host" state=resume 2>/dev/null || true; fi
  sleep 1
done
echo "slurm did not become ready in 90 s (sinfo: $(timeout 5 sinfo 2>&1 | tr '\n' ' '))" >&2
tail -n 5 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
