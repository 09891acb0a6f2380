from twin_lib.cli import app

app(prog_name="twin")
