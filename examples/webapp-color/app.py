"""webapp-color: a one-page Flask app whose background colour comes from APP_COLOR."""
import os
import random
import socket

from flask import Flask, render_template

app = Flask(__name__)

COLORS = {
    "red": "#e74c3c", "green": "#16a085", "blue": "#2980b9", "blue2": "#30336b",
    "pink": "#be2edd", "darkblue": "#130f40",
}
# Like the lab's app: a colour from the environment, or one at random.
COLOR = os.environ.get("APP_COLOR") or random.choice(list(COLORS))


@app.route("/")
def main():
    return render_template("hello.html", name=socket.gethostname(), color=COLOR,
                           code=COLORS.get(COLOR, COLOR))


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=8080)
