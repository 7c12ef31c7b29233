# run from the repository root
python -m fer_zoo fit --config experiments/ferplus/baseline.yaml --data.root ../shared/data/ferplus --data.train_fraction 0.1 --seed_everything 0 --run_dir runs/bench-lacovl/ferplus/baseline/s0/fit --trainer.max_epochs 5
python -m fer_zoo test --config experiments/ferplus/baseline.yaml --data.root ../shared/data/ferplus --data.train_fraction 0.1 --ckpt_path runs/bench-lacovl/ferplus/baseline/s0/fit/checkpoints/best-epoch04-acc0.5774.ckpt --run_dir runs/bench-lacovl/ferplus/baseline/s0/test --trainer.devices 1 --trainer.strategy auto
