def test_smoke(train_project):
    from gafu.train import train
    project = train_project()
    events = []
    result = train(project, callbacks=[events.append])
    print(result)
    print([e for e in events if e["event"] != "step"][:5])
    print([round(e["loss"], 4) for e in events if e["event"] == "step"])
