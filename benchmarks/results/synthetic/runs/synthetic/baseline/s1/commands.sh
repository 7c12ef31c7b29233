# run from the repository root
python -m fer_zoo fit --config experiments/synthetic/baseline.yaml --checkpoint_every_n_steps 100 --seed_everything 1 --run_dir runs/bench-synth-v2/synthetic/baseline/s1/fit --test_each_epoch true
python -m fer_zoo test --config experiments/synthetic/baseline.yaml --checkpoint_every_n_steps 100 --ckpt_path runs/bench-synth-v2/synthetic/baseline/s1/fit/checkpoints/best-epoch05-acc0.4933.ckpt --run_dir runs/bench-synth-v2/synthetic/baseline/s1/test --trainer.devices 1 --trainer.strategy auto
