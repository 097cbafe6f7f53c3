"""Image-folder classification, the "cars -> trucks" shape: an ImageNet network (it knows cars) learns your classes.

Data: one folder per class, a training folder and a held-out test folder:
    data/trucks/train/dump_truck/0001.jpg   data/trucks/train/fire_truck/...   ...
    data/trucks/test/dump_truck/...         data/trucks/test/fire_truck/...    ...
Run:    python recipes/image_folder.py                  (override any setting: --data=DIR --epochs=10 ...)
Check:  python recipes/image_folder.py --smoke          (a tiny model on generated images, seconds)
Then:   transferkit predict out/trucks photos/ --json
"""
from transferkit.recipe import run

settings = dict(
    model="packaged:efficientnet_lite0",  # ImageNet EfficientNet-Lite0, shipped on PyPI (offline); or "resnet50"
    data="data/trucks/train",
    test_data="data/trucks/test",
    strategy="auto",                      # measures the probe, then tries freezing the lower half and training the
                                          # rest where a validation split can check it beats the probe (or "freeze")
    epochs=None,                          # None: a step budget from the data size, with early stopping
    batch_size=32,
    learning_rate=1e-3,                   # the head's; the trained backbone groups get a tenth of it
    image_size=224,
    output_dir="out/trucks",
    overwrite=True,
)

if __name__ == "__main__":
    run(settings)
