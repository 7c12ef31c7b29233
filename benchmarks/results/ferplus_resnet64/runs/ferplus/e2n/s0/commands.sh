# run from the repository root
python -m fer_zoo fit --config experiments/ferplus/e2n.yaml --data.root ../shared/data/ferplus --seed_everything 0 --run_dir runs/bench/ferplus/e2n/s0/fit
python -m fer_zoo test --config experiments/ferplus/e2n.yaml --data.root ../shared/data/ferplus --ckpt_path runs/bench/ferplus/e2n/s0/fit/checkpoints/best-epoch09-acc0.6983.ckpt --run_dir runs/bench/ferplus/e2n/s0/test --trainer.devices 1 --trainer.strategy auto
