#!/usr/bin/env bash
# Slurm: start a Ray head on the first node of the allocation and a worker on every other node, then run
# the job against that cluster; the driver writes the run directory on the head node's --out.
#   sbatch deploy/slurm.sh            (edit the #SBATCH lines and the venv path for your site)
#SBATCH --job-name=keras-batch-job
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=16
#SBATCH --time=02:00:00
set -euo pipefail
export RAY_USAGE_STATS_ENABLED=0
VENV=${VENV:-$HOME/keras-batch-job/.venv}     # pip install 'keras-batch-job[tensorflow,ray]' there
OUT=${OUT:-$PWD/reports}
PORT=6379

mapfile -t nodes < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
head=${nodes[0]}
head_ip=$(srun --nodes=1 --ntasks=1 -w "$head" hostname --ip-address | awk '{print $1}')

srun --nodes=1 --ntasks=1 -w "$head" "$VENV/bin/ray" start --head --node-ip-address="$head_ip" --port=$PORT \
  --num-cpus="$SLURM_CPUS_PER_TASK" --num-gpus="${SLURM_GPUS_PER_NODE:-0}" --block &
sleep 10
for node in "${nodes[@]:1}"; do
  srun --nodes=1 --ntasks=1 -w "$node" "$VENV/bin/ray" start --address="$head_ip:$PORT" \
    --num-cpus="$SLURM_CPUS_PER_TASK" --num-gpus="${SLURM_GPUS_PER_NODE:-0}" --block &
done
sleep 10

"$VENV/bin/job" run --executor ray --ray-address "$head_ip:$PORT" --repeats 3 --out "$OUT"
