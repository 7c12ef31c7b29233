# run from the repository root
python -m fer_zoo fit --config experiments/ferplus/e2n.yaml --data.root ../shared/data/ferplus --data.image_size 48 --seed_everything 1 --run_dir runs/bench-e2n48/ferplus/e2n/s1/fit --test_each_epoch true --trainer.max_epochs 5
python -m fer_zoo test --config experiments/ferplus/e2n.yaml --data.root ../shared/data/ferplus --data.image_size 48 --ckpt_path runs/bench-e2n48/ferplus/e2n/s1/fit/checkpoints/best-epoch04-acc0.7652.ckpt --run_dir runs/bench-e2n48/ferplus/e2n/s1/test --trainer.devices 1 --trainer.strategy auto
