#!/bin/bash
# Multi-node `twin train`, written by `twin train ... --slurm-script`; submit with sbatch.
# One srun task per node starts torchrun, which starts {{nproc}} training processes there;
# the nodes meet at a c10d rendezvous on the first node of the allocation.
# Rank 0 alone tracks the run, on whichever node it lands: keep TWIN_HOME on a shared
# file system, or set MLFLOW_TRACKING_URI to a server. Edit the #SBATCH lines to suit.
#SBATCH --job-name={{job_name}}
#SBATCH --nodes={{nodes}}
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task={{cpus_per_task}}
{{gpus}}
#SBATCH --time={{time}}
#SBATCH --output=%x-%j.out
##SBATCH --partition=PARTITION
##SBATCH --account=ACCOUNT

set -euo pipefail

head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

srun {{python}} -m torch.distributed.run \
    --nnodes="$SLURM_JOB_NUM_NODES" \
    --nproc-per-node={{nproc}} \
    --rdzv-id="$SLURM_JOB_ID" \
    --rdzv-backend=c10d \
    --rdzv-endpoint="$head_node:{{port}}" \
    -m twinengine.ai.distributed {{args}}
