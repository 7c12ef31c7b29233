# run from the repository root
python -m fer_zoo fit --config experiments/synthetic/baseline.yaml --seed_everything 0 --run_dir runs/bench/synthetic/baseline/s0/fit
python -m fer_zoo test --config experiments/synthetic/baseline.yaml --ckpt_path runs/bench/synthetic/baseline/s0/fit/checkpoints/best-epoch05-acc0.5650.ckpt --run_dir runs/bench/synthetic/baseline/s0/test --trainer.devices 1 --trainer.strategy auto
