"""`ownrun stop`: stops the head and node daemons started from this machine."""
import typer
from ownrun.cli.console import console


def stop() -> None:
    """Stop the cluster started from this machine (safe to run when nothing runs)."""
    from ownrun.engine.cluster import started

    stopped = started.stop()
    if stopped is None:
        console.print("no ownrun cluster started from this machine is running; nothing to stop",
                      soft_wrap=True)
        return
    what = [f"{len(stopped['nodes'])} node(s)"] + (["the head"] if stopped["head"] else [])
    console.print(f"stopped {' and '.join(what)} of the cluster at "
                  f"{stopped['head_address'].removeprefix('tcp://')}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("stop")(stop)
