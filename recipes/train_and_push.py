"""Train, then push to the Hugging Face Hub: the model card, the weights and transferkit.json in one commit.

Log in once (`hf auth login`, or set HF_TOKEN) with a token that can write; set push_to_hub to your repo.
Run:    python recipes/train_and_push.py --push_to_hub=your-name/minilm-tweet-sentiment
Check:  python recipes/train_and_push.py --smoke   (a tiny model; pushes only when HF_ENDPOINT names a test hub)
A saved folder can be pushed later without retraining: transferkit push out/tweet-sentiment your-name/repo
"""
from tweets import test_tweets, train_tweets
from transferkit.recipe import run

settings = dict(
    model="packaged:all-MiniLM-L6-v2",
    data=train_tweets,
    test_data=test_tweets,
    strategy="linear-probe",      # the solved probe on MiniLM's features: seconds on a CPU
    max_length=64,
    output_dir="out/tweet-sentiment-probe",
    overwrite=True,
    push_to_hub="your-name/minilm-tweet-sentiment",
    private=True,
    commit_message="tweet sentiment: linear probe on all-MiniLM-L6-v2",
    smoke={"model": "tiny_sentence_transformer", "data": "texts"},
)

if __name__ == "__main__":
    run(settings)
