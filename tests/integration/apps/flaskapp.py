"""A small Flask site: pages, a form POST, a redirect, a static file, 404."""

import hashlib
import os

from flask import Flask, redirect, request, url_for

HERE = os.path.dirname(os.path.abspath(__file__))
app = Flask(__name__, static_folder=os.path.join(HERE, "static"))


@app.route("/")
def index():
    return "<h1>Flask index</h1>"


@app.route("/hello/<name>")
def hello(name):
    return "Hello, %s!" % name


@app.route("/form", methods=["GET", "POST"])
def form():
    if request.method == "POST":
        return "got %s and %d bytes" % (request.form.get("name", ""),
                                         len(request.files["upload"].read())
                                         if "upload" in request.files else 0)
    return '<form method="post"><input name="name"></form>'


@app.route("/redirect")
def go():
    return redirect(url_for("hello", name="redirected"))


@app.route("/json", methods=["POST"])
def echo_json():
    return {"received": request.get_json()}


@app.route("/sha", methods=["POST"])
def sha():
    data = request.get_data()
    return "%d %s" % (len(data), hashlib.sha256(data).hexdigest())


@app.route("/stream")
def stream():
    chunks = int(request.args.get("mb", "1")) * 16

    def generate():
        for _ in range(chunks):
            yield b"s" * 65536
    return app.response_class(generate(), mimetype="application/octet-stream")


application = app
