# run from the repository root
python -m fer_zoo fit --config experiments/synthetic/e2n.yaml --seed_everything 0 --run_dir runs/bench/synthetic/e2n/s0/fit
python -m fer_zoo test --config experiments/synthetic/e2n.yaml --ckpt_path runs/bench/synthetic/e2n/s0/fit/checkpoints/best-epoch04-acc0.3167.ckpt --run_dir runs/bench/synthetic/e2n/s0/test --trainer.devices 1 --trainer.strategy auto
