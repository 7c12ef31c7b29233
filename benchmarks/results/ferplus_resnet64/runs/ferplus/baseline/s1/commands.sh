# run from the repository root
python -m fer_zoo fit --config experiments/ferplus/baseline.yaml --data.root ../shared/data/ferplus --seed_everything 1 --run_dir runs/bench/ferplus/baseline/s1/fit
python -m fer_zoo test --config experiments/ferplus/baseline.yaml --data.root ../shared/data/ferplus --ckpt_path runs/bench/ferplus/baseline/s1/fit/checkpoints/best-epoch09-acc0.8281.ckpt --run_dir runs/bench/ferplus/baseline/s1/test --trainer.devices 1 --trainer.strategy auto
