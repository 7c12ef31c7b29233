# run from the repository root
python -m fer_zoo fit --config experiments/ferplus/baseline.yaml --data.root ../shared/data/ferplus --seed_everything 0 --run_dir runs/bench/ferplus/baseline/s0/fit
python -m fer_zoo test --config experiments/ferplus/baseline.yaml --data.root ../shared/data/ferplus --ckpt_path runs/ferplus-baseline-s0/checkpoints/best-epoch09-acc0.8274.ckpt --run_dir runs/bench/ferplus/baseline/s0/test --trainer.devices 1 --trainer.strategy auto
