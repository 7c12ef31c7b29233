# run from the repository root
python -m fer_zoo fit --config experiments/ferplus/baseline.yaml --data.image_size 48 --seed_everything 0 --run_dir runs/bench-clean48/ferplus/baseline/s0/fit --trainer.max_epochs 5
python -m fer_zoo test --config experiments/ferplus/baseline.yaml --data.image_size 48 --ckpt_path runs/bench-clean48/ferplus/baseline/s0/fit/checkpoints/best-epoch04-acc0.7746.ckpt --run_dir runs/bench-clean48/ferplus/baseline/s0/test --trainer.devices 1 --trainer.strategy auto
