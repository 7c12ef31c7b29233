# run from the repository root
python -m fer_zoo pretrain-landmarks --data synthetic --epochs 5 --out runs/bench/synthetic/landmark_net --image_size 64 --num_workers 1 --data_options num_train=3000 num_val=600 num_test=1000 synth_size=64
python -m fer_zoo fit --config experiments/synthetic/lacovl.yaml --model.landmark_weights runs/bench/synthetic/landmark_net/landmark_net.pt --seed_everything 0 --run_dir runs/bench/synthetic/lacovl/s0/fit
python -m fer_zoo test --config experiments/synthetic/lacovl.yaml --model.landmark_weights runs/bench/synthetic/landmark_net/landmark_net.pt --ckpt_path runs/bench/synthetic/lacovl/s0/fit/checkpoints/best-epoch05-acc0.1667.ckpt --run_dir runs/bench/synthetic/lacovl/s0/test --trainer.devices 1 --trainer.strategy auto
