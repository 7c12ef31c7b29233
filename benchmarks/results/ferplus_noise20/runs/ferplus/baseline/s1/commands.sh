# run from the repository root
python -m fer_zoo fit --config experiments/ferplus/baseline.yaml --data.image_size 48 --data.label_noise 0.2 --data.progressive_epochs 5 --seed_everything 1 --run_dir runs/bench-noise20/ferplus/baseline/s1/fit --trainer.max_epochs 5
python -m fer_zoo test --config experiments/ferplus/baseline.yaml --data.image_size 48 --data.label_noise 0.2 --data.progressive_epochs 5 --ckpt_path runs/bench-noise20/ferplus/baseline/s1/fit/checkpoints/best-epoch04-acc0.7424.ckpt --run_dir runs/bench-noise20/ferplus/baseline/s1/test --trainer.devices 1 --trainer.strategy auto
